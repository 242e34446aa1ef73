"""The offline weather stack without Ray: sample upstream, weather MCP server, scripted model."""

from collections.abc import Iterator
from contextlib import contextmanager

from agent_runtime.chat.app import ChatAgentArgs
from llm.scripted.server import create_app as create_scripted_llm
from mcp_servers.serving import MCPScalingArgs, create_mcp_asgi_app
from mcp_servers.weather import WeatherServerArgs, create_weather_server
from protocols.events import ChatEvent, Error, ToolCall, ToolResult
from sample_upstream.app import create_app as create_sample_upstream
from tests.support.servers import ServerThread


@contextmanager
def offline_weather_servers() -> Iterator[ChatAgentArgs]:
    """Start the three servers on free ports; yield the weather agent's args that point at them."""
    sample = ServerThread(create_sample_upstream()).start()
    weather_args = WeatherServerArgs(
        nws_base_url=f"{sample.url}/nws",
        open_meteo_forecast_url=f"{sample.url}/open-meteo",
        open_meteo_geocoding_url=f"{sample.url}/geocoding",
        open_meteo_air_quality_url=f"{sample.url}/air-quality",
    )
    mcp = ServerThread(
        create_mcp_asgi_app(lambda: create_weather_server(weather_args), MCPScalingArgs())
    ).start()
    llm = ServerThread(create_scripted_llm()).start()
    try:
        yield ChatAgentArgs(llm_base_url=f"{llm.url}/v1", mcp_urls={"weather": f"{mcp.url}/mcp"})
    finally:
        for server in (llm, mcp, sample):
            server.stop()


def forecast_calls(events: list[ChatEvent], forecast_tool: str) -> tuple[ToolCall, ToolCall]:
    """The run's ``geocode`` and ``forecast_tool`` calls (the first two), both answered ``ok``, no error."""
    assert not [e for e in events if isinstance(e, Error)]
    geocode, forecast = [e for e in events if isinstance(e, ToolCall)][:2]
    assert (geocode.name, forecast.name) == ("geocode", forecast_tool)
    statuses = {e.id: e.status for e in events if isinstance(e, ToolResult)}
    assert statuses[geocode.id] == statuses[forecast.id] == "ok"
    return geocode, forecast
