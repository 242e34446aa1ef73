"""The packing agent (Microsoft Agent Framework) end to end without Ray: the scripted model, the weather
MCP server on the sample upstream, the chat app; the same flow as the weather agent's test."""

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent_runtime import MAFAgentRunner
from agent_runtime.chat.app import create_chat_app
from agent_runtime.state.database import Database
from agents.packing import SPEC
from protocols.chat_client import ChatClient
from protocols.events import ChatEvent, Done, Metadata, Token
from tests.support.servers import ServerThread
from tests.support.weather import forecast_calls, offline_weather_servers


@pytest.fixture(scope="module")
def packing_agent_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = Database(f"sqlite:///{Path(tmp_path_factory.mktemp('packing')) / 'agents.db'}")
    with offline_weather_servers() as args:
        assert SPEC.runner is not None
        runner = SPEC.runner(SPEC, args)
        assert isinstance(runner, MAFAgentRunner)
        agent = ServerThread(create_chat_app(runner, database=database)).start()
        yield agent.url
        agent.stop()


async def ask(base_url: str, user_request: str, thread_id: str | None = None) -> list[ChatEvent]:
    async with ChatClient(base_url) as agent:
        return (await agent.send(user_request, thread_id)).events


async def test_health_lists_the_weather_tools(packing_agent_url: str) -> None:
    async with httpx.AsyncClient() as client:
        health = (await client.get(f"{packing_agent_url}/health")).json()
    assert health["ready"] is True and health["agent"] == "packing"
    assert {"geocode", "get_forecast", "get_world_forecast"} <= set(health["tools"])


async def test_a_packing_request_geocodes_then_gets_the_forecast(packing_agent_url: str) -> None:
    events = await ask(packing_agent_url, "What should I pack for a trip to Seattle this week?")
    assert isinstance(events[0], Metadata) and events[0].agent == "packing" and isinstance(events[-1], Done)
    geocode, forecast = forecast_calls(events, "get_forecast")
    assert "seattle" in json.dumps(geocode.args).lower()
    assert abs(forecast.args["latitude"] - 47.6) < 0.1 and abs(forecast.args["longitude"] + 122.3) < 0.1
    answer = events[-1].answer
    assert answer and "".join(e.text for e in events if isinstance(e, Token)).endswith(answer)
    assert "sample" in answer.lower()


async def test_a_follow_up_uses_the_thread(packing_agent_url: str) -> None:
    first = await ask(packing_agent_url, "What should I pack for a trip to Seattle this week?")
    thread_id = first[0].thread_id
    events = await ask(packing_agent_url, "And for Lisbon?", thread_id)
    _, forecast = forecast_calls(events, "get_world_forecast")
    assert abs(forecast.args["latitude"] - 38.7) < 0.1
    async with httpx.AsyncClient() as client:
        view = (await client.get(f"{packing_agent_url}/threads/{thread_id}")).json()
    users = [m["content"] for m in view["messages"] if m["role"] == "user"]
    assert users == ["What should I pack for a trip to Seattle this week?", "And for Lisbon?"]
