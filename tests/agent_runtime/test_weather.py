"""The weather agent end to end without Ray: scripted LLM, weather MCP server, sample upstream, chat app."""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agent_runtime.chat.app import create_chat_app
from agent_runtime.runner import AgentRunner
from agents.weather import SPEC
from protocols.chat_client import ChatClient
from protocols.events import ChatEvent, Done, Error, Metadata, Token, ToolCall, ToolResult
from tests.support.paths import REPO_ROOT
from tests.support.servers import ServerThread
from tests.support.weather import offline_weather_servers

SAMPLE_DATA = REPO_ROOT / "sample_upstream" / "data" / "weather"


@pytest.fixture(scope="module")
def weather_agent_url() -> Iterator[str]:
    with offline_weather_servers() as args:
        agent = ServerThread(create_chat_app(AgentRunner.from_args(SPEC, args))).start()
        yield agent.url
        agent.stop()


async def ask(base_url: str, body: dict[str, Any]) -> list[ChatEvent]:
    async with ChatClient(base_url) as agent:
        return (await agent.send(body["user_request"], body.get("thread_id"))).events


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
