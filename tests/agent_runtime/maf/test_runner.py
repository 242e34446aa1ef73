"""The MAF runner behind the SSE chat app over real HTTP: a playbook LLM and a real MCP server, no Ray.

The same ``/chat`` contract as the LangGraph runner's tests (tests/agent_runtime/test_chat.py): framing,
tool events, usage, the time limit, the tool-round limit, malformed calls, LLM failures, client
disconnect, lost leases, and memory in the platform database across a restart.
"""

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_runtime import MAFAgentRunner
from agent_runtime.chat.app import create_chat_app
from agent_runtime.llm_client import LLMClient
from agent_runtime.spec import AgentSpec
from agent_runtime.state.database import Database
from agent_runtime.tools.mcp import MCPServers
from agent_runtime.tools.sources import StaticTools
from platform_core.errors import ConfigurationError
from protocols.events import ChatEvent, Done, Error, Metadata, Token, ToolCall, ToolResult, aiter_sse_events
from tests.support.paths import REPO_ROOT
from tests.support.runtime import (
    PlaybookLLM,
    Turn,
    hang_up_at_first_tool_call,
    playbook_servers,
    post_once_free,
    register_playbook,
)
from tests.support.servers import ServerThread, free_port


@pytest.fixture
def make_runner(servers: tuple[PlaybookLLM, str, str]) -> Callable[..., MAFAgentRunner]:
    _, llm_url, mcp_url = servers

    def make(*, llm_url: str = llm_url, **kwargs: Any) -> MAFAgentRunner:
        spec = AgentSpec(
            name="maf-tester", system_prompt="You test things.", tools=MCPServers({"test": mcp_url})
        )
        client = LLMClient(llm_url, discovery_timeout_s=1.0)
        return MAFAgentRunner(spec, llm=client, **kwargs)

    return make


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """Serve a chat app over a runner (optionally on a database); returns its base URL."""
    servers: list[ServerThread] = []

    def start(runner: MAFAgentRunner, database: Database | None = None) -> str:
        server = ServerThread(create_chat_app(runner, ping_s=0.5, database=database)).start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        if server.thread.is_alive():
            server.stop()


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PlaybookLLM, str, str]]:
    """``(playbook model, its base URL, the test MCP server's URL)``."""
    with playbook_servers() as started:
        yield started


async def chat(base_url: str, user_request: str, thread_id: str | None = None) -> tuple[str, list[ChatEvent]]:
    body = {"user_request": user_request, "thread_id": thread_id}
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("POST", f"{base_url}/chat", json=body) as response:
            assert response.status_code == 200, await response.aread()
            events = [event async for event in aiter_sse_events(response.aiter_lines())]
    return response.headers["x-thread-id"], events


def assert_framed(events: list[ChatEvent]) -> Done:
    """metadata first, done last and only once, at most one error, right before done."""
    assert isinstance(events[0], Metadata) and events[0].agent == "maf-tester"
    assert isinstance(events[-1], Done) and sum(isinstance(e, Done) for e in events) == 1
    errors = [i for i, e in enumerate(events) if isinstance(e, Error)]
    assert errors in ([], [len(events) - 2])
    return events[-1]


def of(events: list[ChatEvent], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def requests_for(llm: PlaybookLLM, user_request: str) -> list[list[dict[str, Any]]]:
    def last_user(messages: list[dict[str, Any]]) -> Any:
        return [m for m in messages if m["role"] == "user"][-1]["content"]

    return [r["messages"] for r in llm.requests if last_user(r["messages"]) == user_request]


async def test_tool_call_result_and_streamed_answer(make_runner, serve, servers) -> None:
    request = register_playbook(
        servers[0],
        Turn(text="Let me check.", tool_calls=[("echo", {"text": "hi"})]),
        Turn(text="The echo tool says hi back to you."),
    )
    thread_id, events = await chat(serve(make_runner()), request)
    done = assert_framed(events)
    assert events[0].thread_id == thread_id == done.thread_id
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("Token") < kinds.index("ToolCall") < kinds.index("ToolResult") < len(kinds) - 2
    (call,) = of(events, ToolCall)
    (result,) = of(events, ToolResult)
    assert (call.name, call.args) == ("echo", {"text": "hi"})
    assert (result.id, result.name, result.status, result.content) == (call.id, "echo", "ok", "echo: hi")
    answer_tokens = [e.text for e in events[kinds.index("ToolResult") :] if isinstance(e, Token)]
    assert len(answer_tokens) > 3 and "".join(answer_tokens) == done.answer
    assert done.answer == "The echo tool says hi back to you."
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (22, 14)  # two model calls


async def test_mcp_error_result_goes_back_to_the_model(make_runner, serve, servers) -> None:
    request = register_playbook(
        servers[0], Turn(tool_calls=[("fail", {"reason": "testing"})]), Turn(text="The tool failed, sorry.")
    )
    _, events = await chat(serve(make_runner()), request)
    done = assert_framed(events)
    (result,) = of(events, ToolResult)
    assert result.status == "error" and "failed on purpose" in result.content
    assert not of(events, Error) and done.answer == "The tool failed, sorry."
    followup = requests_for(servers[0], request)[-1]
    assert followup[-1]["role"] == "tool" and "failed on purpose" in str(followup[-1]["content"])


async def test_run_time_limit_gives_timeout_then_done(make_runner, serve, servers) -> None:
    request = register_playbook(servers[0], Turn(text="Too late.", delay_s=5))
    _, events = await chat(serve(make_runner(run_timeout_s=1.0)), request)
    done = assert_framed(events)
    (error,) = of(events, Error)
    assert error.code == "timeout" and done.answer == "" and not of(events, Token)


async def test_tool_round_limit(make_runner, serve, servers) -> None:
    request = register_playbook(
        servers[0], then=Turn(text="Once more.", tool_calls=[("echo", {"text": "again"})])
    )
    _, events = await chat(serve(make_runner(max_tool_rounds=2)), request)
    assert_framed(events)
    assert len(of(events, ToolCall)) == len(of(events, ToolResult)) == 2  # the refused round never starts
    (error,) = of(events, Error)
    assert error.code == "tool_rounds_exceeded" and "2 tool rounds" in error.message


async def test_a_model_that_keeps_making_invalid_calls_ends_with_invalid_tool_call(
    make_runner, serve, servers
) -> None:
    request = register_playbook(servers[0], then=Turn(tool_calls=[("ech0", {"text": "x"})]))
    _, events = await chat(serve(make_runner()), request)
    done = assert_framed(events)
    assert not of(events, ToolCall) and not of(events, ToolResult)  # malformed calls are never shown
    (error,) = of(events, Error)
    assert error.code == "invalid_tool_call" and "unknown tool 'ech0'" in error.message
    assert done.answer == "" and len(requests_for(servers[0], request)) == 3


async def test_an_invalid_call_is_answered_and_the_model_recovers(make_runner, serve, servers) -> None:
    request = register_playbook(
        servers[0],
        Turn(tool_calls=[("ech0", {"text": "x"})]),
        Turn(tool_calls=[("echo", {"text": "x"})]),
        Turn(text="Ok."),
    )
    _, events = await chat(serve(make_runner()), request)
    done = assert_framed(events)
    assert [c.name for c in of(events, ToolCall)] == ["echo"]
    assert [(r.name, r.status) for r in of(events, ToolResult)] == [("echo", "ok")]
    assert not of(events, Error) and done.answer == "Ok."


async def test_llm_unavailable(make_runner, serve) -> None:
    base = serve(make_runner(llm_url=f"http://127.0.0.1:{free_port()}/v1"))
    _, events = await chat(base, "hello")
    done = assert_framed(events)
    (error,) = of(events, Error)
    assert error.code == "llm_unavailable" and done.answer == ""
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{base}/health")
    assert health.status_code == 503 and health.json()["llm"] is False


async def test_health_reports_tools_and_model(make_runner, serve) -> None:
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{serve(make_runner())}/health")
    body = health.json()
    assert health.status_code == 200 and body["ready"] is True and body["agent"] == "maf-tester"
    assert set(body["tools"]) == {"echo", "add", "fail", "slow"} and body["model"] == "playbook-test-model"


async def test_client_disconnect_stops_the_run(make_runner, serve, servers) -> None:
    request = register_playbook(
        servers[0], Turn(tool_calls=[("slow", {"seconds": 1})]), Turn(text="Nobody listens.")
    )
    again = register_playbook(servers[0], Turn(text="Back again."))
    base = serve(make_runner())
    thread_id = await hang_up_at_first_tool_call(base, request)
    followup = await post_once_free(base, {"user_request": again, "thread_id": thread_id})
    await asyncio.sleep(1.5)  # a run that went on would ask the model again once the tool is done
    assert followup.status_code == 200 and "Back again." in followup.text
    assert len(requests_for(servers[0], request)) == 1  # cancelled: the model was not asked again


async def test_a_lost_lease_stops_the_run_with_thread_claim_lost(make_runner, servers) -> None:
    request = register_playbook(servers[0], Turn(text="Slow.", delay_s=3))
    runner = make_runner()
    abort = asyncio.Event()
    asyncio.get_running_loop().call_later(0.5, abort.set)
    events = [e async for e in runner.stream(request, "t-abort", "r1", abort=abort)]
    await runner.aclose()
    assert isinstance(events[0], Metadata) and isinstance(events[-1], Done)
    assert [e.code for e in of(events, Error)] == ["thread_claim_lost"]


async def test_thread_memory_survives_a_restart_on_the_same_database(
    make_runner, serve, servers, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'agents.db'}"
    first = register_playbook(servers[0], Turn(tool_calls=[("add", {"a": 2, "b": 3})]), Turn(text="It is 5."))
    second = register_playbook(servers[0], Turn(text="Still 5."))
    third = register_playbook(servers[0], Turn(text="I remember."))
    base = serve(make_runner(), Database(url))
    thread_id, events = await chat(base, first)
    assert assert_framed(events).answer == "It is 5."
    _, events = await chat(base, second, thread_id)
    assert assert_framed(events).answer == "Still 5."
    assert [m["role"] for m in requests_for(servers[0], second)[0]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]

    restarted = serve(make_runner(), Database(url))  # a new replica, nothing in memory
    _, events = await chat(restarted, third, thread_id)
    assert assert_framed(events).answer == "I remember."
    sent = requests_for(servers[0], third)[0]
    assert [m["content"] for m in sent if m["role"] == "user"] == [first, second, third]

    async with httpx.AsyncClient() as client:
        view = (await client.get(f"{restarted}/threads/{thread_id}")).json()
        roles = [(m["role"], m.get("name")) for m in view["messages"]]
        assert roles[:4] == [("user", None), ("assistant", None), ("tool", "add"), ("assistant", None)]
        assert view["messages"][1]["tool_calls"][0]["args"] == {"a": 2, "b": 3}
        assert view["messages"][2]["content"] == "5" and view["updated_at"]
        assert (await client.delete(f"{restarted}/threads/{thread_id}")).status_code == 204
        assert (await client.get(f"{base}/threads/{thread_id}")).status_code == 404  # gone for every replica


async def test_a_maf_runner_needs_mcp_servers() -> None:
    spec = AgentSpec(name="x", system_prompt="x", tools=StaticTools([]))
    with pytest.raises(ConfigurationError, match="MCPServers"):
        MAFAgentRunner(spec)


def test_langgraph_agents_never_import_maf() -> None:
    code = "import sys, agents.weather, agents.packing; assert 'agent_framework' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=120)
