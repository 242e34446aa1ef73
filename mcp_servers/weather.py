"""Weather MCP server: geocoding, US (NWS) and worldwide (Open-Meteo) forecasts, alerts, air quality.

Deployed as the ``mcp_weather`` Serve app at ``/mcp-weather`` (MCP at ``/mcp-weather/mcp``) by
:func:`build_app`; :func:`create_weather_server` builds the plain FastMCP server for tests and tools.
Upstream base URLs left unset fall back to the public APIs, or in offline mode (``OFFLINE=1``) to the
bundled sample upstream server.
"""

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations
from pydantic import Field
from ray.serve import Application

from mcp_servers.http_upstream import base_url_field, upstream_base_url
from mcp_servers.serving import MCPScalingArgs, build_mcp_app
from mcp_servers.weather_service import (
    MAX_FORECAST_DAYS,
    MAX_GEOCODE_RESULTS,
    NWS_PUBLIC_BASE_URL,
    WeatherEndpoints,
    WeatherService,
)

OPEN_METEO_FORECAST_URL = "https://api.open-meteo.com"
OPEN_METEO_GEOCODING_URL = "https://geocoding-api.open-meteo.com"
OPEN_METEO_AIR_QUALITY_URL = "https://air-quality-api.open-meteo.com"

# Where the sample upstream app (sample_upstream.weather) serves each API, below its route.
SAMPLE_NWS_PATH = "/nws"
SAMPLE_FORECAST_PATH = "/open-meteo"
SAMPLE_GEOCODING_PATH = "/geocoding"
SAMPLE_AIR_QUALITY_PATH = "/air-quality"

DEFAULT_USER_AGENT = "(ray-agent-platform weather MCP server; set user_agent to your app and contact e-mail)"

SERVER_INSTRUCTIONS = (
    "Weather tools. To answer about a named place, first call geocode to get its latitude and longitude, "
    "then get_forecast (United States, National Weather Service) or get_world_forecast (any country), "
    "get_air_quality, or get_alerts with the two-letter US state code that geocode returns."
)


class WeatherServerArgs(MCPScalingArgs):
    """Serve config ``args`` of the weather MCP app (scaling fields come from ``MCPScalingArgs``)."""

    nws_base_url: str | None = base_url_field("NWS API", NWS_PUBLIC_BASE_URL)
    open_meteo_forecast_url: str | None = base_url_field("Open-Meteo forecast", OPEN_METEO_FORECAST_URL)
    open_meteo_geocoding_url: str | None = base_url_field("Open-Meteo geocoding", OPEN_METEO_GEOCODING_URL)
    open_meteo_air_quality_url: str | None = base_url_field(
        "Open-Meteo air quality", OPEN_METEO_AIR_QUALITY_URL
    )
    user_agent: str = Field(
        default=DEFAULT_USER_AGENT,
        description="User-Agent sent upstream. NWS asks for one that identifies the app and a contact.",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="Timeout of each upstream HTTP request.")
    retries: int = Field(default=1, ge=0, description="Retries after a connection error or 5xx answer.")

    def upstreams(self) -> dict[str, str]:
        """The weather APIs ``GET /health`` probes."""
        endpoints = self.endpoints()
        return {
            "nws": endpoints.nws,
            "open_meteo_forecast": endpoints.forecast,
            "open_meteo_geocoding": endpoints.geocoding,
            "open_meteo_air_quality": endpoints.air_quality,
        }

    def endpoints(self) -> WeatherEndpoints:
        """Base URLs with unset ones resolved: the public APIs, or the sample upstream when offline."""
        return WeatherEndpoints(
            nws=upstream_base_url(self.nws_base_url, public=NWS_PUBLIC_BASE_URL, sample_path=SAMPLE_NWS_PATH),
            forecast=upstream_base_url(
                self.open_meteo_forecast_url, public=OPEN_METEO_FORECAST_URL, sample_path=SAMPLE_FORECAST_PATH
            ),
            geocoding=upstream_base_url(
                self.open_meteo_geocoding_url,
                public=OPEN_METEO_GEOCODING_URL,
                sample_path=SAMPLE_GEOCODING_PATH,
            ),
            air_quality=upstream_base_url(
                self.open_meteo_air_quality_url,
                public=OPEN_METEO_AIR_QUALITY_URL,
                sample_path=SAMPLE_AIR_QUALITY_PATH,
            ),
            user_agent=self.user_agent,
            timeout_s=self.timeout_s,
            retries=self.retries,
        )


# Bounds are published in the JSON schema (so models see them) and checked by the tools themselves,
# which gives one clear sentence instead of a pydantic validation dump.
def _bounded(description: str, minimum: float, maximum: float) -> Any:
    return Field(description=description, json_schema_extra={"minimum": minimum, "maximum": maximum})


Latitude = Annotated[float, _bounded("Latitude in decimal degrees, -90 to 90 (from geocode).", -90, 90)]
Longitude = Annotated[float, _bounded("Longitude in decimal degrees, -180 to 180 (from geocode).", -180, 180)]
PlaceName = Annotated[
    str, Field(description="City or place name, optionally with region or country, e.g. 'Paris, France'.")
]
GeocodeCount = Annotated[int, _bounded("How many matches to return.", 1, MAX_GEOCODE_RESULTS)]
ForecastDays = Annotated[int, _bounded("Number of forecast days.", 1, MAX_FORECAST_DAYS)]
StateCode = Annotated[str, Field(description="Two-letter US state or territory code, e.g. 'WA', 'CA', 'NY'.")]


READ_ONLY_WEB_TOOL = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=True)


def _tool_registrar(server: FastMCP) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Like ``@server.tool()``, with the docstring dedented (models read it as the description)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        server.add_tool(fn, description=inspect.cleandoc(fn.__doc__ or ""), annotations=READ_ONLY_WEB_TOOL)
        return fn

    return register


def create_weather_server(args: WeatherServerArgs) -> FastMCP:
    """The FastMCP weather server; its tools share one HTTP client (one server per replica)."""
    service = WeatherService(args.endpoints())
    server = FastMCP("weather", instructions=SERVER_INSTRUCTIONS)
    tool = _tool_registrar(server)

    @tool
    async def geocode(place: PlaceName, count: GeocodeCount = 1) -> dict[str, Any]:
        """Look up the coordinates (latitude and longitude) of a city or place anywhere in the world.

        Use this first when the user names a place: the forecast, air quality and alerts tools need its
        coordinates or US state. Returns name, latitude, longitude, country, country_code, admin1
        (state or region) and, for US places, the two-letter state code.
        """
        return await service.geocode(place, count)

    @tool
    async def get_forecast(latitude: Latitude, longitude: Longitude) -> dict[str, Any]:
        """Weather forecast for US coordinates from the US National Weather Service (NWS).

        Returns the next days and nights with temperature, wind, chance of precipitation and a detailed
        forecast text. For coordinates outside the United States it returns the worldwide Open-Meteo
        forecast instead and says so in 'note'; get_world_forecast is the direct choice there.
        """
        return await service.us_forecast(latitude, longitude)

    @tool
    async def get_world_forecast(
        latitude: Latitude, longitude: Longitude, days: ForecastDays = 7
    ) -> dict[str, Any]:
        """Worldwide daily weather forecast for any coordinates (Open-Meteo), any country.

        Returns current conditions and, per day, conditions, high and low temperature (°C),
        precipitation, chance of precipitation and maximum wind.
        """
        return await service.world_forecast(latitude, longitude, days)

    @tool
    async def get_alerts(state: StateCode) -> dict[str, Any]:
        """Active weather alerts, warnings, watches and advisories for a US state (National Weather Service).

        Returns each alert's event, headline, severity, affected area, times, description and instructions.
        """
        return await service.alerts(state)

    @tool
    async def get_air_quality(latitude: Latitude, longitude: Longitude) -> dict[str, Any]:
        """Current air quality at coordinates anywhere in the world (Open-Meteo).

        Returns the US AQI with its category, the European AQI, PM2.5, PM10, ozone, nitrogen dioxide,
        sulphur dioxide and carbon monoxide.
        """
        return await service.air_quality_now(latitude, longitude)

    return server


def build_app(args: WeatherServerArgs) -> Application:
    """Serve builder (``mcp_servers.weather:build_app``): the weather server, stateless and autoscaled."""
    return build_mcp_app(functools.partial(create_weather_server, args), name="WeatherMCP", scaling=args)
