"""Weather MCP server over real streamable HTTP against the sample upstream (no Ray), as deployed offline."""

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from mcp_servers.serving import create_mcp_asgi_app
from mcp_servers.weather import WeatherServerArgs, create_weather_server
from platform_core.settings import SAMPLE_UPSTREAM_ROUTE, get_settings
from sample_upstream.app import create_app as create_sample_upstream
from tests.support.servers import RoutePrefix, ServerThread, closed_port_url, mcp_session, tool_text

TOOLS = {"geocode", "get_forecast", "get_world_forecast", "get_alerts", "get_air_quality"}
SEATTLE = {"latitude": 47.60621, "longitude": -122.33207}
PARIS = {"latitude": 48.85341, "longitude": 2.3488}


def served_weather(args: WeatherServerArgs) -> ServerThread:
    return ServerThread(create_mcp_asgi_app(functools.partial(create_weather_server, args), args))


@pytest.fixture(scope="module")
def weather_url() -> Iterator[str]:
    """OFFLINE=1 with SERVE_BASE_URL at a server that hosts the sample upstream at its Serve route."""
    with ServerThread(RoutePrefix(create_sample_upstream(), SAMPLE_UPSTREAM_ROUTE)) as upstream:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("OFFLINE", "1")
            env.setenv("SERVE_BASE_URL", upstream.url)
            get_settings.cache_clear()
            app = served_weather(WeatherServerArgs())  # every base URL left to the offline default
        get_settings.cache_clear()
        with app as weather:
            yield weather.url + "/mcp"


async def call(url: str, tool: str, arguments: dict[str, Any]) -> tuple[bool, Any]:
    """(is_error, parsed JSON result or error text)."""
    async with mcp_session(url) as session:
        result = await session.call_tool(tool, arguments)
    text = tool_text(result)
    assert "Traceback" not in text
    return result.isError, text if result.isError else json.loads(text)


async def call_ok(url: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    is_error, value = await call(url, tool, arguments)
    assert not is_error, value
    assert "SAMPLE DATA" in value["notice"]
    return value


async def call_error(url: str, tool: str, arguments: dict[str, Any]) -> str:
    is_error, value = await call(url, tool, arguments)
    assert is_error, value
    return value


# -- configuration ---------------------------------------------------------------------------------


def test_unset_urls_default_to_public_apis_or_sample_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("OFFLINE", "0")
    online = WeatherServerArgs().endpoints()
    assert (online.nws, online.forecast) == ("https://api.weather.gov", "https://api.open-meteo.com")
    assert online.geocoding == "https://geocoding-api.open-meteo.com"
    assert online.air_quality == "https://air-quality-api.open-meteo.com"

    monkeypatch.setenv("OFFLINE", "1")
    monkeypatch.setenv("SERVE_BASE_URL", "http://serve:8000")
    get_settings.cache_clear()
    offline = WeatherServerArgs(nws_base_url="http://nws.test").endpoints()
    assert offline.nws == "http://nws.test"  # explicit values win
    assert offline.forecast == "http://serve:8000/sample-upstream/open-meteo"
    assert offline.geocoding == "http://serve:8000/sample-upstream/geocoding"
    assert offline.air_quality == "http://serve:8000/sample-upstream/air-quality"
    get_settings.cache_clear()


async def test_lists_the_weather_tools_with_llm_friendly_descriptions(weather_url: str) -> None:
    async with mcp_session(weather_url) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == TOOLS
    assert "coordinates" in tools["geocode"].description
    assert "US" in tools["get_forecast"].description and "forecast" in tools["get_forecast"].description
    assert "Worldwide" in tools["get_world_forecast"].description
    assert "alerts" in tools["get_alerts"].description
    assert "air quality" in tools["get_air_quality"].description.lower()
    latitude = tools["get_forecast"].inputSchema["properties"]["latitude"]
    assert (latitude["minimum"], latitude["maximum"]) == (-90, 90)


# -- geocode ---------------------------------------------------------------------------------------


async def test_geocode_us_city_has_state_code(weather_url: str) -> None:
    result = await call_ok(weather_url, "geocode", {"place": "Seattle"})
    (seattle,) = result["results"]
    assert seattle["name"] == "Seattle"
    assert seattle["latitude"] == pytest.approx(47.606, abs=0.01)
    assert seattle["longitude"] == pytest.approx(-122.332, abs=0.01)
    assert (seattle["country_code"], seattle["admin1"], seattle["state"]) == ("US", "Washington", "WA")


@pytest.mark.parametrize(
    ("place", "country_code", "admin1"),
    [
        ("Paris, France", "FR", "Île-de-France"),
        ("Paris, TX", "US", "Texas"),
        ("Portland OR", "US", "Oregon"),
        ("portland, maine", "US", "Maine"),
        ("Reykjavik", "IS", "Capital Region"),
        ("London, UK", "GB", "England"),
    ],
)
async def test_geocode_qualified_names(weather_url: str, place: str, country_code: str, admin1: str) -> None:
    result = await call_ok(weather_url, "geocode", {"place": place})
    best = result["results"][0]
    assert (best["country_code"], best["admin1"]) == (country_code, admin1)
    assert "state" not in best or best["state"] == {"Texas": "TX", "Oregon": "OR", "Maine": "ME"}[admin1]


async def test_geocode_several_results(weather_url: str) -> None:
    result = await call_ok(weather_url, "geocode", {"place": "Paris", "count": 3})
    assert [r["country_code"] for r in result["results"]] == ["FR", "US"]  # by population


async def test_geocode_unknown_and_mismatched_places(weather_url: str) -> None:
    assert "No place named 'Atlantis Xyz'" in await call_error(
        weather_url, "geocode", {"place": "Atlantis Xyz"}
    )
    message = await call_error(weather_url, "geocode", {"place": "Paris, Germany"})
    assert "No place matches 'Paris, Germany'" in message and "Paris, Texas, United States" in message
    assert "count must be between 1 and 10" in await call_error(
        weather_url, "geocode", {"place": "X1", "count": 50}
    )


# -- forecasts -------------------------------------------------------------------------------------


async def test_us_forecast_from_recorded_nws_point(weather_url: str) -> None:
    result = await call_ok(weather_url, "get_forecast", SEATTLE)
    assert result["source"] == "US National Weather Service"
    assert result["location"] == "Seattle, WA"
    assert result["forecast_office"] == "SEW"
    assert len(result["periods"]) == 14
    first = result["periods"][0]
    assert first["name"] == "Tonight"
    assert first["temperature"] == "44 °F"
    assert first["wind"] == "5 to 10 mph S"
    assert first["chance_of_precipitation"] == "80%"
    assert first["detailed_forecast"].startswith("[SAMPLE DATA]")


async def test_us_forecast_for_any_us_point(weather_url: str) -> None:
    result = await call_ok(weather_url, "get_forecast", {"latitude": 39.05, "longitude": -98.51})  # Kansas
    assert len(result["periods"]) == 14
    assert all(p["temperature"].endswith("°F") and p["short_forecast"] for p in result["periods"])
    assert result["periods"][0]["name"] in ("Today", "Tonight")


async def test_us_forecast_outside_the_us_falls_back_to_world_forecast(weather_url: str) -> None:
    result = await call_ok(weather_url, "get_forecast", PARIS)
    assert "outside" in result["note"] and "Open-Meteo" in result["note"]
    assert result["source"] == "Open-Meteo"
    assert len(result["daily"]) == 7


async def test_world_forecast(weather_url: str) -> None:
    result = await call_ok(
        weather_url, "get_world_forecast", {"latitude": 35.6895, "longitude": 139.69171, "days": 3}
    )
    assert result["timezone"] == "Asia/Tokyo"
    assert len(result["daily"]) == 3
    day = result["daily"][0]
    assert day["high"].endswith("°C") and day["low"].endswith("°C")
    assert not day["conditions"].startswith("Unknown")
    assert day["summary"].startswith(day["date"])
    assert result["current"]["temperature"].endswith("°C")


# -- alerts and air quality ------------------------------------------------------------------------


async def test_alerts_for_a_state_with_alerts(weather_url: str) -> None:
    result = await call_ok(weather_url, "get_alerts", {"state": "wa"})
    assert (result["state"], result["count"]) == ("WA", 2)
    assert {alert["event"] for alert in result["alerts"]} == {"Wind Advisory", "Winter Storm Watch"}
    assert all(alert["description"].startswith("[SAMPLE DATA]") for alert in result["alerts"])


async def test_alerts_for_a_quiet_state(weather_url: str) -> None:
    result = await call_ok(weather_url, "get_alerts", {"state": "IA"})
    assert result["count"] == 0 and result["alerts"] == []
    assert result["message"] == "No active weather alerts for Iowa (IA)."


async def test_air_quality(weather_url: str) -> None:
    result = await call_ok(weather_url, "get_air_quality", SEATTLE)
    assert isinstance(result["us_aqi"], int)
    assert result["us_aqi_category"] in ("Good", "Moderate", "Unhealthy for Sensitive Groups")
    assert result["pollutants"]["pm2_5"].endswith("μg/m³")


# -- invalid arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        (
            "get_forecast",
            {"latitude": 200, "longitude": 0},
            "latitude must be between -90 and 90 degrees, got 200",
        ),
        ("get_world_forecast", {"latitude": 0, "longitude": -181}, "longitude must be between -180 and 180"),
        ("get_world_forecast", {"latitude": 0, "longitude": 0, "days": 30}, "days must be between 1 and 16"),
        ("get_air_quality", {"latitude": -91, "longitude": 0}, "latitude must be between -90 and 90"),
        ("get_alerts", {"state": "Washington"}, "use 'WA' for Washington"),
        ("get_alerts", {"state": "XX"}, "'XX' is not a US state or territory code"),
        ("get_forecast", {"latitude": "north", "longitude": 0}, "latitude"),
    ],
)
async def test_invalid_arguments_are_clear_tool_errors(
    weather_url: str, tool: str, arguments: dict[str, Any], message: str
) -> None:
    assert message in await call_error(weather_url, tool, arguments)


# -- upstream failures -----------------------------------------------------------------------------


class BrokenUpstream:
    """An upstream that fails in one way per path prefix, counting the requests it gets."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.switch_down = False  # mode "switch": 503 while set, else an answer

    async def handle(self, request: Request) -> Response:
        mode = request.path_params["mode"]
        self.hits[mode] = self.hits.get(mode, 0) + 1
        if mode == "switch" and self.switch_down:
            return PlainTextResponse("Service Unavailable", status_code=503)
        if mode == "error500":
            return PlainTextResponse("Internal Server Error", status_code=500)
        if mode == "slow":
            await asyncio.sleep(3)
        if mode == "html":
            return Response("<html>maintenance</html>", media_type="text/html")
        if mode == "drip":  # every read comes in time, the answer never ends
            return StreamingResponse(self._drip(), media_type="application/json")
        if mode == "huge":
            return StreamingResponse(self._huge(), media_type="application/json")
        return PlainTextResponse("{}")

    @staticmethod
    async def _drip() -> AsyncIterator[bytes]:
        yield b"["
        for _ in range(600):
            await asyncio.sleep(0.1)
            yield b" "

    @staticmethod
    async def _huge() -> AsyncIterator[bytes]:
        yield b'{"padding": "'
        for _ in range(10_000):
            yield b"x" * 1024

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{mode}/{rest:path}", self.handle)])


@pytest.fixture(scope="module")
def broken() -> Iterator[tuple[BrokenUpstream, str]]:
    upstream = BrokenUpstream()
    with ServerThread(upstream.app()) as served:
        yield upstream, served.url


def broken_args(base: str, **overrides: Any) -> WeatherServerArgs:
    urls = {
        "nws_base_url": base,
        "open_meteo_forecast_url": base,
        "open_meteo_geocoding_url": base,
        "open_meteo_air_quality_url": base,
    }
    return WeatherServerArgs(**urls, **overrides)


async def test_upstream_down(broken: tuple[BrokenUpstream, str]) -> None:
    with served_weather(broken_args(closed_port_url(), timeout_s=2)) as weather:
        url = weather.url + "/mcp"
        message = await call_error(url, "geocode", {"place": "Seattle"})
        assert "Could not reach the Open-Meteo geocoding API at http://127.0.0.1:" in message
        message = await call_error(url, "get_forecast", SEATTLE)
        assert "Could not reach the US National Weather Service API" in message


async def test_upstream_http_500_is_retried_then_reported(broken: tuple[BrokenUpstream, str]) -> None:
    upstream, base = broken
    with served_weather(broken_args(base + "/error500", retries=1)) as weather:
        message = await call_error(weather.url + "/mcp", "get_alerts", {"state": "CA"})
    assert "the US National Weather Service API answered HTTP 500" in message
    assert "Internal Server Error" in message
    assert upstream.hits["error500"] == 2


async def test_upstream_timeout(broken: tuple[BrokenUpstream, str]) -> None:
    _, base = broken
    with served_weather(broken_args(base + "/slow", timeout_s=0.5)) as weather:
        message = await call_error(weather.url + "/mcp", "get_world_forecast", PARIS)
    assert "the Open-Meteo forecast API did not answer within 0.5 s" in message


async def test_an_upstream_that_never_finishes_is_cut_off(broken: tuple[BrokenUpstream, str]) -> None:
    _, base = broken
    with served_weather(broken_args(base + "/drip", timeout_s=0.5)) as weather:
        message = await call_error(weather.url + "/mcp", "get_world_forecast", PARIS)
    assert "the Open-Meteo forecast API did not finish answering within 1.5 s" in message


async def test_an_oversized_upstream_answer_is_not_read(broken: tuple[BrokenUpstream, str]) -> None:
    _, base = broken
    with served_weather(broken_args(base + "/huge")) as weather:
        message = await call_error(weather.url + "/mcp", "get_air_quality", PARIS)
    assert "the Open-Meteo air quality API sent an answer over 8388608 bytes" in message


async def test_upstream_not_json(broken: tuple[BrokenUpstream, str]) -> None:
    _, base = broken
    with served_weather(broken_args(base + "/html")) as weather:
        message = await call_error(weather.url + "/mcp", "get_air_quality", PARIS)
    assert "the Open-Meteo air quality API sent a response that is not valid JSON" in message
    assert "text/html" in message


async def test_health_is_not_ready_while_an_upstream_is_down_and_ready_once_it_is_back(
    broken: tuple[BrokenUpstream, str],
) -> None:
    upstream, base = broken
    args = broken_args(base + "/ok", upstream_probe_s=0)  # probe on every health request
    args.open_meteo_forecast_url = base + "/switch/v1"
    upstream.switch_down = True
    try:
        with served_weather(args) as weather, httpx.Client(base_url=weather.url) as client:
            down = client.get("/health")
            assert down.status_code == 503 and down.json()["ready"] is False
            assert down.json()["upstreams_down"] == {
                "open_meteo_forecast": f"GET {base}/switch/v1 answered 503"
            }
            upstream.switch_down = False
            back = client.get("/health")
            assert back.status_code == 200 and back.json()["ready"] is True
            assert "upstreams_down" not in back.json()
    finally:
        upstream.switch_down = False
