"""Durable conversations through the SSE chat app, without Ray: several app instances on one database
play an agent's replicas (and a restart). Real HTTP, the scripted model, the weather MCP server on the
sample upstream; the playbook model where a run must be slow on purpose."""

import asyncio
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_runtime.chat.app import ChatAgentArgs, create_chat_app
from agent_runtime.runner import AgentRunner
from agent_runtime.spec import AgentSpec
from agent_runtime.state.database import Database, thread_key
from agent_runtime.state.leases import replica_id
from agent_runtime.tools.mcp import MCPServers
from agents.weather import SPEC as WEATHER
from platform_core.settings import get_settings
from protocols.chat_client import ChatClient
from protocols.events import ChatEvent, Done, Error, Metadata, ToolCall
from tests.support.persistence import database_fixtures, put_checkpoint
from tests.support.runtime import (
    Playbook,
    PlaybookLLM,
    Turn,
    create_playbook_llm,
    create_test_mcp_server,
)
from tests.support.servers import ServerThread, serve_mcp
from tests.support.weather import offline_weather_servers

postgres_url, database_url = database_fixtures()


@pytest.fixture(scope="module")
def weather_stack() -> Iterator[ChatAgentArgs]:
    """Scripted model + weather MCP server on the sample upstream; the agent args that point at them."""
    with offline_weather_servers() as args:
        yield args


@pytest.fixture(scope="module")
def playbook_llm() -> Iterator[tuple[PlaybookLLM, str, str]]:
    """The playbook model and a test MCP server: ``(model, llm_base_url, mcp_url)``."""
    fake = create_playbook_llm()
    llm = ServerThread(fake.app).start()
    mcp = serve_mcp(create_test_mcp_server())
    yield fake, f"{llm.url}/v1", f"{mcp.url}/mcp"
    llm.stop()
    mcp.stop()


@pytest.fixture
def replicas() -> Iterator[Callable[..., ServerThread]]:
    """Start chat app instances ("replicas"); all are stopped after the test."""
    started: list[ServerThread] = []

    def start(runner: AgentRunner, database_url: str, **kwargs: Any) -> ServerThread:
        server = ServerThread(create_chat_app(runner, ping_s=0.5, database=Database(database_url), **kwargs))
        started.append(server.start())
        return server

    yield start
    for server in started:
        if server.thread.is_alive():
            server.stop()


def weather_replica(replicas, args: ChatAgentArgs, database_url: str) -> ServerThread:
    return replicas(AgentRunner.from_args(WEATHER, args), database_url)


def playbook_replica(replicas, playbook_llm, database_url: str, **kwargs: Any) -> ServerThread:
    _, llm_url, mcp_url = playbook_llm
    spec = AgentSpec(name="tester", system_prompt="You test things.", tools=MCPServers({"test": mcp_url}))
    args = ChatAgentArgs(llm_base_url=llm_url)
    return replicas(AgentRunner.from_args(spec, args), database_url, **kwargs)


async def ask(base_url: str, text: str, thread_id: str | None = None) -> list[ChatEvent]:
    async with ChatClient(base_url) as agent:
        events = (await agent.send(text, thread_id)).events
    assert isinstance(events[0], Metadata) and isinstance(events[-1], Done)
    assert not [e for e in events if isinstance(e, Error)], events
    return events


def calls(events: list[ChatEvent]) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, e.args) for e in events if isinstance(e, ToolCall)]


async def get_thread(base_url: str, thread_id: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(f"{base_url}/threads/{thread_id}")


# --- continuity across replicas and restarts ----------------------------------------------------------


async def test_a_conversation_continues_on_another_replica_and_after_a_restart(
    replicas, weather_stack: ChatAgentArgs, database_url: str
) -> None:
    a = weather_replica(replicas, weather_stack, database_url)
    b = weather_replica(replicas, weather_stack, database_url)
    thread, other = f"trip-{uuid.uuid4().hex[:8]}", f"trip-{uuid.uuid4().hex[:8]}"

    first = await ask(a.url, "What is the weather in Seattle?", thread)
    assert [name for name, _ in calls(first)] == ["geocode", "get_forecast"]
    # "And in Paris?" only means weather to a model that remembers the question before: replica B does.
    follow_up = await ask(b.url, "And in Paris?", thread)
    assert ("geocode", {"place": "Paris"}) in calls(follow_up)
    assert "paris" in follow_up[-1].answer.lower()
    assert calls(await ask(b.url, "And in Paris?")) == []  # the same words on a new thread: no context

    before = (await get_thread(b.url, thread)).json()
    roles = [m["role"] for m in before["messages"]]
    assert roles.count("user") == 2 and roles[0] == "user" and roles[-1] == "assistant"
    assert before["messages"] == (await get_thread(a.url, thread)).json()["messages"]
    await ask(a.url, "What is the weather in Seattle?", other)

    a.stop()
    b.stop()  # the whole agent goes down ...
    c = weather_replica(replicas, weather_stack, database_url)  # ... and comes back
    after = await get_thread(c.url, thread)
    assert after.status_code == 200 and after.json()["messages"] == before["messages"]
    again = await ask(c.url, "And in Paris?", other)
    assert ("geocode", {"place": "Paris"}) in calls(again)


# --- the thread API -----------------------------------------------------------------------------------


async def test_thread_api_shows_tool_calls_and_forgets_on_delete(
    replicas, weather_stack: ChatAgentArgs, database_url: str
) -> None:
    a = weather_replica(replicas, weather_stack, database_url)
    b = weather_replica(replicas, weather_stack, database_url)
    thread = f"api-{uuid.uuid4().hex[:8]}"
    events = await ask(a.url, "What is the weather in Seattle?", thread)
    geocode = next(e for e in events if isinstance(e, ToolCall))

    view = (await get_thread(b.url, thread)).json()
    assert view["thread_id"] == thread and datetime.fromisoformat(view["updated_at"])
    user, call, result = view["messages"][:3]
    assert user == {"role": "user", "content": "What is the weather in Seattle?"}
    assert call["role"] == "assistant" and call["tool_calls"] == [
        {"id": geocode.id, "name": "geocode", "args": {"place": "Seattle"}}
    ]
    assert result["role"] == "tool" and result["name"] == "geocode" and result["status"] == "ok"
    assert result["tool_call_id"] == geocode.id and "Seattle" in result["content"]
    assert view["messages"][-1] == {"role": "assistant", "content": events[-1].answer, "tool_calls": []}

    async with httpx.AsyncClient(timeout=30) as client:
        deleted = await client.delete(f"{a.url}/threads/{thread}")
        assert deleted.status_code == 204
        for base in (a.url, b.url):
            missing = await client.get(f"{base}/threads/{thread}")
            assert missing.status_code == 404
            assert missing.json()["error"]["code"] == "thread_not_found"
        assert (await client.delete(f"{b.url}/threads/{thread}")).status_code == 404
        for bad in ("-starts-with-dash", "has%20space", "x" * 129):
            for method in ("GET", "DELETE"):
                invalid = await client.request(method, f"{a.url}/threads/{bad}")
                assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "invalid_request"
    # the thread id is free again: a new conversation starts from nothing
    assert calls(await ask(b.url, "And in Paris?", thread)) == []


# --- one run per thread -------------------------------------------------------------------------------


def slow_request(playbook_llm, delay_s: float = 2.5) -> str:
    fake = playbook_llm[0]
    key = f"slow {uuid.uuid4().hex[:8]}"
    fake.playbooks[key] = Playbook([Turn(text="Finally done.", delay_s=delay_s)])
    return key


async def test_a_second_message_while_a_run_goes_on_is_refused_on_every_replica(
    replicas, playbook_llm, database_url: str
) -> None:
    a = playbook_replica(replicas, playbook_llm, database_url)
    b = playbook_replica(replicas, playbook_llm, database_url)
    thread = f"busy-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=60) as client:
        body = {"user_request": slow_request(playbook_llm), "thread_id": thread}
        async with client.stream("POST", f"{a.url}/chat", json=body) as running:
            assert running.status_code == 200 and running.headers["x-replica-id"] == replica_id()
            lines = running.aiter_lines()
            assert await anext(lines) == "event: metadata"
            for base in (b.url, a.url):
                refused = await client.post(
                    f"{base}/chat", json={"user_request": "me too", "thread_id": thread}
                )
                assert refused.status_code == 409
                assert refused.headers["content-type"].startswith("application/json")
                assert refused.json()["error"]["code"] == "thread_busy"
            deleting = await client.delete(f"{b.url}/threads/{thread}")
            assert deleting.status_code == 409 and deleting.json()["error"]["code"] == "thread_busy"
            other = await client.post(
                f"{b.url}/chat", json={"user_request": "hello", "thread_id": f"{thread}-2"}
            )
            assert other.status_code == 200  # other threads are not affected
            rest = [line async for line in lines]
        assert "event: done" in rest

    # free again as soon as the run ended: the next message goes through and sees the whole history
    await ask(b.url, "next question", thread)
    messages = (await get_thread(a.url, thread)).json()["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", body["user_request"]),
        ("assistant", "Finally done."),
        ("user", "next question"),
        ("assistant", "You said: next question"),
    ]


async def test_simultaneous_messages_on_one_thread_start_exactly_one_run(
    replicas, playbook_llm, database_url: str
) -> None:
    a = playbook_replica(replicas, playbook_llm, database_url)
    b = playbook_replica(replicas, playbook_llm, database_url)
    thread = f"race-{uuid.uuid4().hex[:8]}"
    request = slow_request(playbook_llm, delay_s=1.0)

    async def post(base: str) -> int:
        async with httpx.AsyncClient(timeout=60) as client:
            async with client.stream(
                "POST", f"{base}/chat", json={"user_request": request, "thread_id": thread}
            ) as r:
                await r.aread()
                return r.status_code

    statuses = await asyncio.gather(*(post(base) for base in [a.url, b.url] * 4))
    assert sorted(statuses) == [200] + [409] * 7
    messages = (await get_thread(a.url, thread)).json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]


async def test_a_client_that_goes_away_frees_the_thread_at_once(
    replicas, playbook_llm, database_url: str
) -> None:
    a = playbook_replica(replicas, playbook_llm, database_url)
    b = playbook_replica(replicas, playbook_llm, database_url)
    thread = f"gone-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=60) as client:
        body = {"user_request": slow_request(playbook_llm, delay_s=20), "thread_id": thread}
        async with client.stream("POST", f"{a.url}/chat", json=body) as running:
            assert await anext(running.aiter_lines()) == "event: metadata"
        # the client closed the stream: the run is cancelled and its claim released (not left to expire)
        async with asyncio.timeout(5):
            while True:
                response = await client.post(
                    f"{b.url}/chat", json={"user_request": "hi", "thread_id": thread}
                )
                if response.status_code == 200:
                    break
                assert response.status_code == 409
                await asyncio.sleep(0.1)


# --- retention inside the app -------------------------------------------------------------------------


async def test_retention_days_purges_old_threads_while_the_app_runs(
    replicas, playbook_llm, database_url: str
) -> None:
    old, recent = f"old-{uuid.uuid4().hex[:8]}", f"recent-{uuid.uuid4().hex[:8]}"
    async with Database(database_url) as db:
        saver = await db.checkpointer()
        await put_checkpoint(saver, thread_key("tester", old), datetime.now(UTC) - timedelta(days=10))
        await put_checkpoint(saver, thread_key("tester", recent), datetime.now(UTC) - timedelta(days=1))
    app = playbook_replica(replicas, playbook_llm, database_url, retention_days=7)
    async with asyncio.timeout(10):
        while (await get_thread(app.url, old)).status_code != 404:
            await asyncio.sleep(0.1)
    assert (await get_thread(app.url, recent)).status_code == 200


def test_without_database_url_apps_use_the_sqlite_file_under_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        db = Database()
        assert db.url.kind == "sqlite" and db.url.sqlite_path == tmp_path / "state" / "agents.db"
    finally:
        get_settings.cache_clear()
