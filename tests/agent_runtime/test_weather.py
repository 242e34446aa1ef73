"""The weather agent end to end without Ray: scripted LLM, weather MCP server, sample upstream, chat app."""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agent_runtime.chat.app import ChatAgentArgs, create_chat_app
from agent_runtime.runner import AgentRunner
from agents.weather import SPEC
from llm.scripted.server import create_app as create_scripted_llm
from mcp_servers.serving import MCPScalingArgs, create_mcp_asgi_app
from mcp_servers.weather import WeatherServerArgs, create_weather_server
from protocols.events import ChatEvent, Done, Error, Metadata, Token, ToolCall, ToolResult, aiter_sse_events
from sample_upstream.app import create_app as create_sample_upstream
from tests.support.paths import REPO_ROOT
from tests.support.servers import ServerThread

SAMPLE_DATA = REPO_ROOT / "sample_upstream" / "data" / "weather"


@pytest.fixture(scope="module")
def weather_agent_url() -> Iterator[str]:
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
    args = ChatAgentArgs(llm_base_url=f"{llm.url}/v1", mcp_urls={"weather": f"{mcp.url}/mcp"})
    agent = ServerThread(create_chat_app(AgentRunner.from_args(SPEC, args))).start()
    yield agent.url
    for server in (agent, llm, mcp, sample):
        server.stop()


async def ask(base_url: str, body: dict[str, Any]) -> list[ChatEvent]:
    async with httpx.AsyncClient(timeout=60) as client:
        async with client.stream("POST", f"{base_url}/chat", json=body) as response:
            assert response.status_code == 200
            return [event async for event in aiter_sse_events(response.aiter_lines())]


def sample_forecast_periods() -> list[dict[str, Any]]:
    (path,) = SAMPLE_DATA.glob("nws_forecast_*.json")
    return json.loads(path.read_text())["properties"]["periods"]


async def test_health_lists_the_weather_tools(weather_agent_url: str) -> None:
    async with httpx.AsyncClient() as client:
        health = (await client.get(f"{weather_agent_url}/health")).json()
    assert health["ready"] is True and health["agent"] == "weather"
    assert {"geocode", "get_forecast", "get_world_forecast", "get_alerts", "get_air_quality"} <= set(
        health["tools"]
    )


async def test_seattle_forecast_geocodes_then_asks_nws(weather_agent_url: str) -> None:
    events = await ask(weather_agent_url, {"user_request": "What is the weather in Seattle this week?"})
    assert isinstance(events[0], Metadata) and isinstance(events[-1], Done)
    assert not [e for e in events if isinstance(e, Error)]
    calls = [e for e in events if isinstance(e, ToolCall)]
    results = {e.id: e for e in events if isinstance(e, ToolResult)}
    assert [c.name for c in calls[:2]] == ["geocode", "get_forecast"]
    assert "seattle" in json.dumps(calls[0].args).lower()
    forecast = calls[1].args
    assert abs(forecast["latitude"] - 47.6) < 0.1 and abs(forecast["longitude"] + 122.3) < 0.1
    assert all(results[c.id].status == "ok" for c in calls)
    # the forecast result is the recorded NWS forecast, and the answer quotes it and says it is sample data
    answer = events[-1].answer
    assert answer and "".join(e.text for e in events if isinstance(e, Token)).endswith(answer)
    assert "sample" in answer.lower()
    first_period = sample_forecast_periods()[0]
    assert first_period["name"] in results[calls[1].id].content
    assert str(first_period["temperature"]) in answer
