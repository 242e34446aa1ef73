"""Fuzzing the MCP tool servers in process: hypothesis-generated tool arguments through the real weather and
web search servers, as each Serve replica builds them (``create_mcp_asgi_app``: stateless streamable HTTP,
JSON answers), over ``httpx.ASGITransport``; raw JSON-RPC garbage at the same endpoint.

Upstream calls go to the bundled sample upstream on loopback, never the internet: the weather server's base
URLs point at it, ``brave_search`` too, and ``fetch_url`` resolves every other host name to a private
address (refused by the URL guard before any connection). Properties: no 5xx, every answer JSON (a JSON-RPC
result or error; a tool failure is an ``isError`` result in words, no traceback), no request past its
timeout, an over-large body refused with 413.
"""

import functools
import itertools
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_servers.serving import MAX_REQUEST_BYTES, create_mcp_asgi_app
from mcp_servers.weather import WeatherServerArgs, create_weather_server
from mcp_servers.web_search import WebSearchServerArgs, create_web_search_server
from platform_core.settings import get_settings
from sample_upstream.app import create_app as create_sample_upstream
from tests.support.fuzz import (
    InProcessApp,
    Reply,
    describe,
    fuzz_settings,
    garbage_bodies,
    json_values,
    nasty_text,
)
from tests.support.servers import ServerThread

MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
_ids = itertools.count(1)


async def private_dns(host: str, port: int) -> list[str]:
    """DNS of this test world: every name is in a private network, so fetch_url never leaves the machine."""
    return ["10.9.9.9"]


@pytest.fixture(scope="module")
def sample() -> Iterator[str]:
    with ServerThread(create_sample_upstream()) as server:
        yield server.url


@pytest.fixture(scope="module")
def weather(sample: str) -> Iterator[InProcessApp]:
    args = WeatherServerArgs(
        nws_base_url=f"{sample}/nws",
        open_meteo_forecast_url=f"{sample}/open-meteo",
        open_meteo_geocoding_url=f"{sample}/geocoding",
        open_meteo_air_quality_url=f"{sample}/air-quality",
        timeout_s=5,
        retries=0,
    )
    app = create_mcp_asgi_app(functools.partial(create_weather_server, args), args)
    with InProcessApp(app, base_url="http://127.0.0.1") as served:
        yield served


@pytest.fixture(scope="module")
def web(sample: str) -> Iterator[InProcessApp]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OFFLINE", "1")
        env.delenv("BRAVE_API_KEY", raising=False)
        get_settings.cache_clear()
        args = WebSearchServerArgs(
            brave_base_url=f"{sample}/brave",
            trusted_hosts=[urlsplit(sample).netloc],
            fetch_timeout_s=5,
            read_timeout_s=3,
            connect_timeout_s=2,
        )
        app = create_mcp_asgi_app(
            functools.partial(create_web_search_server, args, resolver=private_dns), args
        )
    get_settings.cache_clear()
    with InProcessApp(app, base_url="http://127.0.0.1") as served:
        yield served


def rpc(served: InProcessApp, body: Any) -> Reply:
    return served.request("POST", "/mcp", json=body, headers=MCP_HEADERS)


def check_rpc_answer(reply: Reply) -> dict[str, Any]:
    """No 5xx, a JSON body, and a JSON-RPC result or error object."""
    assert reply.status < 500, f"server error: {describe(reply)}"
    assert reply.headers.get("content-type", "").startswith("application/json"), describe(reply)
    body = reply.json()
    assert isinstance(body, dict), describe(reply)
    if "error" in body and isinstance(body["error"], dict) and "jsonrpc" in body:
        assert isinstance(body["error"].get("code"), int) and isinstance(body["error"].get("message"), str)
    elif reply.status >= 300:  # a refusal of ours before the transport: the platform's shape
        assert isinstance(body.get("error", {}).get("code"), str), describe(reply)
    else:
        assert "result" in body, describe(reply)
    return body


def call_tool(served: InProcessApp, name: str, arguments: Any) -> dict[str, Any]:
    body = {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }
    answer = check_rpc_answer(rpc(served, body))
    result = answer.get("result")
    if isinstance(result, dict):
        texts = [block.get("text", "") for block in result.get("content", [])]
        assert not any("Traceback" in text for text in texts), texts
        if result.get("isError"):
            assert texts and all(texts), result  # a failure says what failed
    return answer


def arguments(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Tool arguments: some of the fields, plausible or any JSON value, extra keys; or not an object."""
    plausible = st.fixed_dictionaries({}, optional={k: v | json_values for k, v in fields.items()})
    with_extra = st.tuples(plausible, st.dictionaries(nasty_text, json_values, max_size=2)).map(
        lambda pair: {**pair[1], **pair[0]}
    )
    return with_extra | json_values


numbers = st.integers(min_value=-(10**20), max_value=10**20) | st.floats(
    allow_nan=False, allow_infinity=False
)
latitudes = st.floats(min_value=-95, max_value=95) | numbers
longitudes = st.floats(min_value=-185, max_value=185) | numbers
WEATHER_TOOLS = {
    "geocode": arguments(
        {"place": nasty_text | st.sampled_from(["Paris", "Seattle, WA", "Lisbon"]), "count": numbers}
    ),
    "get_forecast": arguments({"latitude": latitudes, "longitude": longitudes}),
    "get_world_forecast": arguments({"latitude": latitudes, "longitude": longitudes, "days": numbers}),
    "get_alerts": arguments({"state": nasty_text | st.sampled_from(["WA", "CA", "ny", "ZZ"])}),
    "get_air_quality": arguments({"latitude": latitudes, "longitude": longitudes}),
}


@fuzz_settings(scale=2)
@given(
    call=st.sampled_from(sorted(WEATHER_TOOLS)).flatmap(
        lambda name: st.tuples(st.just(name), WEATHER_TOOLS[name])
    )
)
def test_weather_tool_arguments(weather: InProcessApp, call: tuple[str, Any]) -> None:
    call_tool(weather, *call)


def urls(sample: str) -> st.SearchStrategy[str]:
    paths = st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=30)
    return st.one_of(
        st.sampled_from(
            ["/pages/lisbon.html", "/pages/old-lisbon-guide.html", "/pages/image.png", "/robots.txt"]
        ).map(lambda path: sample + path),
        paths.map(lambda path: f"{sample}/pages/{path}"),
        st.tuples(
            st.sampled_from(["http", "https", "ftp", "file", "javascript", "HTTP", ""]), nasty_text, paths
        ).map(lambda parts: f"{parts[0]}://{parts[1]}/{parts[2]}"),
        st.sampled_from(
            [
                "http://127.0.0.1/",
                "http://[::1]:80/",
                "http://0x7f000001/",
                "http://169.254.169.254/latest/meta-data",
                "http://guide.example:8080/",
                "http://user:pass@guide.example/",
                "http://%00/",
                "http://" + "a" * 300 + ".example/",
            ]
        ),
        nasty_text,
    )


@fuzz_settings(scale=2)
@given(data=st.data())
def test_web_tool_arguments(web: InProcessApp, sample: str, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(["brave_search", "fetch_url"]))
    if name == "brave_search":
        args = data.draw(
            arguments({"query": nasty_text | st.sampled_from(["lisbon", "kyoto travel"]), "count": numbers})
        )
    else:
        args = data.draw(
            arguments(
                {"url": urls(sample), "max_length": numbers, "start_index": numbers, "raw": st.booleans()}
            )
        )
    call_tool(web, name, args)


rpc_bodies = st.one_of(
    st.fixed_dictionaries(
        {
            "jsonrpc": st.just("2.0") | json_values,
            "method": st.sampled_from(["tools/call", "tools/list", "initialize", "ping", "x"]) | nasty_text,
        },
        optional={"id": st.integers() | nasty_text | json_values, "params": json_values},
    ),
    json_values,
)


@fuzz_settings()
@given(body=rpc_bodies, server=st.sampled_from(["weather", "web"]))
def test_json_rpc_bodies(weather: InProcessApp, web: InProcessApp, body: Any, server: str) -> None:
    reply = rpc(weather if server == "weather" else web, body)
    assert reply.status < 500, describe(reply)
    if reply.status != 202:  # a notification (no id) is accepted with an empty body
        check_rpc_answer(reply)


@fuzz_settings()
@given(raw=garbage_bodies)
def test_garbage_bodies(weather: InProcessApp, raw: bytes) -> None:
    reply = weather.request("POST", "/mcp", content=raw, headers=MCP_HEADERS)
    assert reply.status < 500, describe(reply)
    if reply.status != 202:
        check_rpc_answer(reply)


# --- regressions and bounds -------------------------------------------------------------------------


def test_deeply_nested_json_is_a_parse_error_not_a_500(weather: InProcessApp) -> None:
    """Found by fuzzing: 5,000 nested ``[`` made mcp's parser raise RecursionError, answered 500."""
    reply = weather.request("POST", "/mcp", content=b"[" * 5000 + b"]" * 5000, headers=MCP_HEADERS)
    assert reply.status == 400 and reply.json()["error"]["code"] == -32700


def test_over_large_body_is_413(weather: InProcessApp) -> None:
    """Found by review of the fuzz targets: any body size was read and parsed."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "geocode", "arguments": {"place": "x" * MAX_REQUEST_BYTES}},
    }
    reply = rpc(weather, body)
    assert reply.status == 413 and reply.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/nope", 404), ("PUT", "/health/x", 404)])
def test_unknown_routes_answer_json(weather: InProcessApp, method: str, path: str, status: int) -> None:
    """Found by fuzzing: Starlette's plain-text ``Not Found`` / ``Method Not Allowed``."""
    reply = weather.request(method, path)
    assert reply.status == status and isinstance(reply.json()["error"]["code"], str)


def test_a_tool_call_through_the_fuzz_path_works(weather: InProcessApp) -> None:
    answer = call_tool(weather, "geocode", {"place": "Paris"})
    assert not answer["result"]["isError"]
    assert json.loads(answer["result"]["content"][0]["text"])["results"][0]["name"] == "Paris"
