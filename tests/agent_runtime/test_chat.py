"""The SSE chat app over real HTTP: a playbook LLM (OpenAI protocol) and a real MCP server, no Ray."""

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_runtime.chat.app import MAX_USER_REQUEST_CHARS, create_chat_app
from agent_runtime.factories import MAX_INVALID_TOOL_CALL_RETRIES
from agent_runtime.llm_client import LLMClient
from agent_runtime.runner import AgentRunner
from agent_runtime.spec import AgentSpec
from agent_runtime.tools.mcp import MCPServers
from identity.delegation import install_signer
from identity.gate import AuthGate
from identity.service import IdentityService
from platform_core.logs import RunFields
from protocols.events import (
    ChatEvent,
    Done,
    Error,
    Metadata,
    SSEParser,
    Token,
    ToolCall,
    ToolResult,
    aiter_sse_events,
)
from tests.support.metrics import record_agent_metrics
from tests.support.runtime import (
    PlaybookLLM,
    Turn,
    create_playbook_llm,
    create_test_mcp_server,
    register_playbook,
)
from tests.support.servers import ServerThread, free_port, serve_mcp


@pytest.fixture(scope="module")
def llm() -> Iterator[tuple[PlaybookLLM, ServerThread]]:
    fake = create_playbook_llm()
    server = ServerThread(fake.app).start()
    yield fake, server
    server.stop()


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    server = serve_mcp(create_test_mcp_server())
    yield f"{server.url}/mcp"
    server.stop()


@pytest.fixture
def make_chat(llm: tuple[PlaybookLLM, ServerThread], mcp_url: str) -> Iterator[Callable[..., str]]:
    """Serve a chat app over the test MCP server; returns its base URL."""
    servers: list[ServerThread] = []

    def make(
        *,
        llm_url: str | None = None,
        tools: MCPServers | None = None,
        gate: AuthGate | None = None,
        name: str = "tester",
        **runner_kwargs: Any,
    ) -> str:
        llm_client = LLMClient(llm_url or f"{llm[1].url}/v1", discovery_timeout_s=1.0)
        spec = AgentSpec(name=name, system_prompt="You test things.", tools=MCPServers({"test": mcp_url}))
        runner = AgentRunner(spec, llm=llm_client, tools=tools, **runner_kwargs)
        server = ServerThread(create_chat_app(runner, ping_s=0.5, gate=gate)).start()
        servers.append(server)
        return server.url

    yield make
    for server in servers:
        server.stop()


def playbook(
    llm: tuple[PlaybookLLM, ServerThread], *turns: Turn, then: Turn | None = None, sequential: bool = False
) -> str:
    """Register a playbook with the module's model under a fresh user message; returns that message."""
    return register_playbook(llm[0], *turns, then=then, sequential=sequential)


def requests_for(llm: tuple[PlaybookLLM, ServerThread], user_request: str) -> list[list[dict[str, Any]]]:
    """The message lists of the model requests made for ``user_request`` (its latest user message)."""
    return [
        r["messages"]
        for r in llm[0].requests
        if [m for m in r["messages"] if m["role"] == "user"][-1]["content"] == user_request
    ]


async def chat(base_url: str, body: dict[str, Any]) -> tuple[httpx.Response, list[ChatEvent]]:
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("POST", f"{base_url}/chat", json=body) as response:
            assert response.status_code == 200, await response.aread()
            events = [event async for event in aiter_sse_events(response.aiter_lines())]
    return response, events


def assert_framed(events: list[ChatEvent]) -> tuple[Metadata, Done]:
    """metadata first, done last and only once, at most one error, right before done."""
    assert isinstance(events[0], Metadata)
    assert isinstance(events[-1], Done)
    assert sum(isinstance(e, Done) for e in events) == 1
    errors = [i for i, e in enumerate(events) if isinstance(e, Error)]
    assert errors in ([], [len(events) - 2])
    return events[0], events[-1]


def of(events: list[ChatEvent], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


async def test_tool_call_result_and_streamed_answer(make_chat, llm) -> None:
    request = playbook(
        llm,
        Turn(text="Let me check.", tool_calls=[("echo", {"text": "hi"})]),
        Turn(text="The echo tool says hi back to you."),
    )
    response, events = await chat(make_chat(), {"user_request": request})
    metadata, done = assert_framed(events)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-thread-id"] == metadata.thread_id == done.thread_id
    assert metadata.agent == "tester" and metadata.run_id

    kinds = [type(e).__name__ for e in events]
    first_call, first_result = kinds.index("ToolCall"), kinds.index("ToolResult")
    assert kinds.index("Token") < first_call < first_result < len(kinds) - 2
    (call,) = of(events, ToolCall)
    (result,) = of(events, ToolResult)
    assert (call.name, call.args) == ("echo", {"text": "hi"})
    assert (result.id, result.name, result.status, result.content) == (call.id, "echo", "ok", "echo: hi")

    answer_tokens = [e.text for e in events[first_result:] if isinstance(e, Token)]
    assert len(answer_tokens) > 3  # streamed word by word, not one block
    assert "".join(answer_tokens) == done.answer == "The echo tool says hi back to you."
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (22, 14)  # two model calls


async def test_the_run_continues_the_callers_trace_to_every_model_call(make_chat, llm) -> None:
    request = playbook(llm, Turn(tool_calls=[("echo", {"text": "hi"})]), Turn(text="Done."))
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    async with httpx.AsyncClient(timeout=30) as client:
        headers = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"}
        async with client.stream(
            "POST", f"{make_chat()}/chat", json={"user_request": request}, headers=headers
        ) as r:
            events = [event async for event in aiter_sse_events(r.aiter_lines())]
    metadata, _ = assert_framed(events)
    assert metadata.trace_id == r.headers["x-trace-id"] == trace_id
    calls = [
        t
        for t, body in zip(llm[0].traceparents, llm[0].requests, strict=True)
        if body in _bodies(llm, request)
    ]
    assert len(calls) == 2 and all(t is not None and t.split("-")[1] == trace_id for t in calls), calls

    # Without a caller's trace, the run starts one of its own: in metadata and the header alike.
    _, again = await chat(make_chat(), {"user_request": request})
    assert again[0].trace_id and again[0].trace_id != trace_id and len(again[0].trace_id) == 32


def _bodies(llm: tuple[PlaybookLLM, ServerThread], user_request: str) -> list[dict[str, Any]]:
    return [
        r
        for r in llm[0].requests
        if [m for m in r["messages"] if m["role"] == "user"][-1]["content"] == user_request
    ]


async def test_events_are_flushed_as_they_happen_and_idle_streams_get_pings(make_chat, llm) -> None:
    request = playbook(llm, Turn(text="Late answer.", delay_s=1.5))
    arrivals: list[tuple[float, ChatEvent]] = []
    comments = 0
    parser = SSEParser()
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("POST", f"{make_chat()}/chat", json={"user_request": request}) as response:
            async for line in response.aiter_lines():
                comments += line.startswith(":")
                if (event := parser.feed(line)) is not None:
                    arrivals.append((time.monotonic(), event))
    assert isinstance(arrivals[0][1], Metadata) and isinstance(arrivals[-1][1], Done)
    assert arrivals[-1][0] - arrivals[0][0] > 1.0  # metadata reached the client before the model answered
    assert comments >= 2  # keep-alive pings every 0.5 s while the model was silent


async def test_mcp_error_result_goes_back_to_the_model(make_chat, llm) -> None:
    request = playbook(
        llm, Turn(tool_calls=[("fail", {"reason": "testing"})]), Turn(text="The tool failed, sorry.")
    )
    _, events = await chat(make_chat(), {"user_request": request})
    _, done = assert_framed(events)
    (result,) = of(events, ToolResult)
    assert result.status == "error" and "failed on purpose: testing" in result.content
    assert not of(events, Error) and done.answer == "The tool failed, sorry."
    followup = [r for r in llm[0].requests if r["messages"][-1]["role"] == "tool"][-1]
    assert "failed on purpose" in str(followup["messages"][-1]["content"])


async def test_unreachable_tool_server_is_a_tool_error_not_a_crash(make_chat, llm) -> None:
    doomed = serve_mcp(create_test_mcp_server("doomed"))
    tools = MCPServers({"doomed": f"{doomed.url}/mcp"})
    assert [t.name for t in await tools.get_tools()]  # discovered while it was up
    doomed.stop()
    request = playbook(llm, Turn(tool_calls=[("echo", {"text": "x"})]), Turn(text="Could not reach it."))
    _, events = await chat(make_chat(tools=tools), {"user_request": request})
    _, done = assert_framed(events)
    (result,) = of(events, ToolResult)
    assert result.status == "error" and "echo" in result.content
    assert not of(events, Error) and done.answer == "Could not reach it."


async def test_malformed_tool_arguments_are_fed_back_and_the_model_recovers(make_chat, llm) -> None:
    request = playbook(
        llm,
        Turn(text="Checking. ", tool_calls=[("echo", '{"text": hi}')]),
        Turn(tool_calls=[("echo", {"text": "hi"})]),
        Turn(text="It says hi."),
        sequential=True,  # the retry is not in the stored conversation
    )
    base = make_chat()
    response, events = await chat(base, {"user_request": request})
    _, done = assert_framed(events)
    (call,) = of(events, ToolCall)  # the rejected call never shows
    (result,) = of(events, ToolResult)
    assert (call.name, call.args) == ("echo", {"text": "hi"})
    assert (result.id, result.status, result.content) == (call.id, "ok", "echo: hi")
    assert not of(events, Error) and done.answer == "It says hi."
    assert done.usage.prompt_tokens == 33  # three model requests, the rejected one included

    first, retry, after_tool = requests_for(llm, request)
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "tool"]
    rejected, feedback = retry[2], retry[3]
    assert rejected["tool_calls"][0]["function"] == {"name": "echo", "arguments": "{}"}
    assert feedback["tool_call_id"] == rejected["tool_calls"][0]["id"]
    assert "are not valid JSON" in feedback["content"] and '{"text": hi}' in feedback["content"]
    assert [m["role"] for m in after_tool] == ["system", "user", "assistant", "tool"]
    assert after_tool[2]["tool_calls"][0]["function"]["arguments"] == '{"text": "hi"}'

    async with httpx.AsyncClient() as client:
        stored = (await client.get(f"{base}/threads/{response.headers['x-thread-id']}")).json()["messages"]
    assert [(m["role"], m.get("status")) for m in stored] == [
        ("user", None),
        ("assistant", None),
        ("tool", "ok"),
        ("assistant", None),
    ]  # only the accepted reply was checkpointed


async def test_unknown_tool_name_is_fed_back_and_the_model_recovers(make_chat, llm) -> None:
    request = playbook(
        llm,
        Turn(tool_calls=[("add", {"a": 1, "b": 2}), ("ech0", {"text": "hi"})]),
        Turn(tool_calls=[("echo", {"text": "hi"})]),
        Turn(text="Fixed it."),
        sequential=True,
    )
    _, events = await chat(make_chat(), {"user_request": request})
    _, done = assert_framed(events)
    assert [c.name for c in of(events, ToolCall)] == [
        "echo"
    ]  # the valid "add" of the rejected turn never ran
    assert [(r.name, r.status) for r in of(events, ToolResult)] == [("echo", "ok")]
    assert not of(events, Error) and done.answer == "Fixed it."

    retry = requests_for(llm, request)[1]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "tool", "tool"]
    results = {m["tool_call_id"]: m["content"] for m in retry[3:]}
    add_id, unknown_id = (c["id"] for c in retry[2]["tool_calls"])
    assert (
        results[unknown_id] == "Error: there is no tool named 'ech0'. Available tools: add, echo, fail, slow."
    )
    assert results[add_id].startswith("Not run")


async def test_a_model_that_keeps_making_invalid_calls_ends_with_invalid_tool_call(make_chat, llm) -> None:
    request = playbook(llm, then=Turn(tool_calls=[("echo", "not json")]))
    base = make_chat()
    response, events = await chat(base, {"user_request": request})
    _, done = assert_framed(events)
    assert not of(events, ToolCall) and not of(events, ToolResult)
    (error,) = of(events, Error)
    assert error.code == "invalid_tool_call"
    assert "3 times" in error.message and "tool 'echo'" in error.message and "not valid JSON" in error.message
    assert done.answer == "" and done.usage.prompt_tokens == 33

    sent = requests_for(llm, request)
    assert len(sent) == 1 + MAX_INVALID_TOOL_CALL_RETRIES
    assert [m["role"] for m in sent[-1]] == ["system", "user", "assistant", "tool", "assistant", "tool"]

    again = playbook(llm, Turn(text="Back to normal."))  # the thread stays usable
    _, events = await chat(base, {"user_request": again, "thread_id": response.headers["x-thread-id"]})
    assert assert_framed(events)[1].answer == "Back to normal."
    assert [m["role"] for m in requests_for(llm, again)[0]] == ["system", "user", "user"]


async def test_parallel_tool_calls(make_chat, llm) -> None:
    request = playbook(
        llm, Turn(tool_calls=[("add", {"a": 2, "b": 3}), ("echo", {"text": "both"})]), Turn(text="Done.")
    )
    _, events = await chat(make_chat(), {"user_request": request})
    assert_framed(events)
    calls, results = of(events, ToolCall), of(events, ToolResult)
    assert [c.name for c in calls] == ["add", "echo"]
    assert {r.id: (r.status, r.content) for r in results} == {
        calls[0].id: ("ok", "5"),
        calls[1].id: ("ok", "echo: both"),
    }


async def test_runs_tool_calls_tokens_and_streams_are_counted(make_chat, llm, monkeypatch) -> None:
    recorded = record_agent_metrics(monkeypatch)
    request = playbook(
        llm, Turn(text="Let me check.", tool_calls=[("echo", {"text": "hi"})]), Turn(text="It says hi.")
    )
    base = make_chat(name="counted")  # its own agent name: streams of earlier tests may still be open
    await chat(base, {"user_request": request})
    assert recorded.total("runs", agent="counted", outcome="ok") == 1
    assert recorded.total("tool_calls", agent="counted", tool="echo", status="ok") == 1
    model = {"agent": "counted", "model": "playbook-test-model"}
    assert recorded.total("llm_tokens", **model, kind="input") == 22
    assert recorded.total("llm_tokens", **model, kind="output") == 14
    [duration] = recorded.samples("run_duration", agent="counted", outcome="ok")
    [first_token] = recorded.samples("first_token", agent="counted")
    assert 0 < first_token <= duration
    assert recorded.samples("open_streams", agent="counted") == [1, 0]

    # A failed tool counts under "error" (the run goes on); a run cut off by its time limit under its code.
    failing = playbook(llm, Turn(tool_calls=[("fail", {"reason": "x"})]), Turn(text="Noted."))
    await chat(base, {"user_request": failing})
    assert recorded.total("tool_calls", agent="counted", tool="fail", status="error") == 1
    late = playbook(llm, Turn(text="Late.", delay_s=5))
    await chat(make_chat(run_timeout_s=1.0, name="counted"), {"user_request": late})
    assert recorded.total("runs", agent="counted", outcome="timeout") == 1
    assert recorded.samples("open_streams", agent="counted")[-1] == 0


async def test_log_lines_of_a_run_carry_its_ids_and_trace_id(make_chat, llm) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(RunFields())  # as route_into_serve_logs puts it on Serve's handlers in a replica
    package = logging.getLogger("agent_runtime")
    package.addHandler(handler)
    level = package.level
    package.setLevel(logging.INFO)
    try:
        _, events = await chat(make_chat(), {"user_request": playbook(llm, Turn(text="Hello."))})
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
    metadata, _ = assert_framed(events)
    [end] = [r for r in records if r.getMessage().startswith(f"run {metadata.run_id} ")]
    fields = {k: getattr(end, k, None) for k in ("run_id", "thread_id", "agent", "trace_id", "outcome")}
    assert fields == {
        "run_id": metadata.run_id,
        "thread_id": metadata.thread_id,
        "agent": "tester",
        "trace_id": metadata.trace_id,
        "outcome": "ok",
    }


async def test_run_time_limit_gives_error_then_done(make_chat, llm) -> None:
    request = playbook(llm, Turn(text="Too late.", delay_s=5))
    _, events = await chat(make_chat(run_timeout_s=1.0), {"user_request": request})
    _, done = assert_framed(events)
    (error,) = of(events, Error)
    assert error.code == "timeout" and done.answer == ""  # cut off: the model's late answer never came
    assert not of(events, Token)


async def test_tool_round_limit(make_chat, llm) -> None:
    request = playbook(llm, then=Turn(text="Once more.", tool_calls=[("echo", {"text": "again"})]))
    _, events = await chat(make_chat(max_tool_rounds=2), {"user_request": request})
    assert_framed(events)
    assert len(of(events, ToolCall)) == len(of(events, ToolResult)) == 2  # the refused round never starts
    (error,) = of(events, Error)
    assert error.code == "tool_rounds_exceeded" and "2 tool rounds" in error.message


async def test_llm_unavailable(make_chat) -> None:
    base = make_chat(llm_url=f"http://127.0.0.1:{free_port()}/v1")
    _, events = await chat(base, {"user_request": "hello"})
    _, done = assert_framed(events)
    (error,) = of(events, Error)
    assert error.code == "llm_unavailable" and done.answer == ""
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{base}/health")
    assert health.status_code == 503 and health.json()["ready"] is False and health.json()["llm"] is False


async def test_health_reports_tools_and_model(make_chat) -> None:
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{make_chat()}/health")
    assert health.status_code == 200
    body = health.json()
    assert body["ready"] is True and body["llm"] is True and body["agent"] == "tester"
    assert set(body["tools"]) == {"echo", "add", "fail", "slow"}
    assert body["model"] == "playbook-test-model" and body["sources"]["test"]["ok"] is True


async def test_thread_memory_and_repair_after_cut_off_run(make_chat, llm) -> None:
    base = make_chat(run_timeout_s=1.0)
    cut = playbook(llm, Turn(tool_calls=[("slow", {"seconds": 3})]), Turn(text="never reached"))
    response, events = await chat(base, {"user_request": cut})
    assert of(events, Error)[0].code == "timeout" and len(of(events, ToolCall)) == 1
    thread_id = response.headers["x-thread-id"]

    again = playbook(llm, Turn(text="Still here."))
    response, events = await chat(base, {"user_request": again, "thread_id": thread_id})
    _, done = assert_framed(events)
    assert response.headers["x-thread-id"] == thread_id and done.answer == "Still here."
    messages = [r for r in llm[0].requests if r["messages"][-1].get("content") == again][-1]["messages"]
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "tool", "user"]  # the open call got a result
    assert messages[1]["content"] == cut and "stopped" in messages[3]["content"]


async def test_client_disconnect_stops_the_run(make_chat, llm, monkeypatch) -> None:
    recorded = record_agent_metrics(monkeypatch)
    request = playbook(llm, Turn(tool_calls=[("slow", {"seconds": 1})]), Turn(text="Nobody listens."))
    again = playbook(llm, Turn(text="Back again."))
    base = make_chat()
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("POST", f"{base}/chat", json={"user_request": request}) as response:
            thread_id = response.headers["x-thread-id"]
            async for event in aiter_sse_events(response.aiter_lines()):
                if isinstance(event, ToolCall):
                    break  # hang up while the tool runs
        # The run holds its thread until it has stopped: a run that went on would first finish the tool
        # and ask the model again, and only then let the next message in.
        async with asyncio.timeout(30):
            while True:
                body = {"user_request": again, "thread_id": thread_id}
                followup = await client.post(f"{base}/chat", json=body)
                if followup.status_code != 409:
                    break
                await asyncio.sleep(0.1)
    assert followup.status_code == 200 and "Back again." in followup.text
    assert len(requests_for(llm, request)) == 1  # the run was cancelled: the model was not asked again
    # ... and counted as stopped, its stream closed (the span and metrics of a run end even when the
    # caller's going away cancels the run's clean-up).
    assert recorded.total("runs", agent="tester", outcome="stopped") == 1
    assert recorded.samples("open_streams", agent="tester")[-1] == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 422, "invalid_request"),
        (b"{}", 422, "invalid_request"),
        (b'{"user_request": ""}', 422, "invalid_request"),
        (b'{"user_request": "   "}', 422, "invalid_request"),
        (b'{"user_request": 42}', 422, "invalid_request"),
        (b'{"user_request": "hi", "thread_id": "../etc"}', 422, "invalid_request"),
        (b'{"user_request": "hi", "thread_id": 7}', 422, "invalid_request"),
        # history starts a thread; it cannot be added to one that exists
        (
            b'{"user_request": "hi", "thread_id": "t1", "history": [{"role": "user", "content": "a"}]}',
            422,
            "invalid_request",
        ),
        (b'{"user_request": "hi", "history": [{"role": "tool", "content": "a"}]}', 422, "invalid_request"),
        (b'{"user_request": "hi", "history": "a"}', 422, "invalid_request"),
        (('{"user_request": "' + "x" * (MAX_USER_REQUEST_CHARS + 1) + '"}').encode(), 422, "invalid_request"),
        (b'{"user_request": "' + b"x" * 300_000 + b'"}', 413, "request_too_large"),
    ],
)
async def test_bad_requests_get_json_errors(make_chat, body: bytes, status: int, code: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{make_chat()}/chat", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


async def test_usage_is_for_admin_keys_and_only_while_auth_is_on(make_chat, tmp_path: Path) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(f"{make_chat()}/usage")).status_code == 404  # auth off: nothing recorded
    url = f"sqlite:///{tmp_path / 'agents.db'}"
    identity = IdentityService(url)  # this loop's; the app opens its own in its server's loop
    await identity.open()
    try:
        _, admin = await identity.keys.create("usage-admin", ["admin"])
        user, token = await identity.keys.create("usage-user", ["agent:tester"])
        await identity.usage.record(user.principal, runs=2, tool_calls=1)
        base = make_chat(gate=AuthGate(enabled=True, identity=IdentityService(url)))
        as_admin = {"Authorization": f"Bearer {admin}"}
        async with httpx.AsyncClient(timeout=30) as client:
            assert (await client.get(f"{base}/usage")).status_code == 401
            refused = await client.get(f"{base}/usage", headers={"Authorization": f"Bearer {token}"})
            assert refused.status_code == 403
            rows = (await client.get(f"{base}/usage?key=usage-user", headers=as_admin)).json()["usage"]
            assert [(r["principal_name"], r["runs"], r["tool_calls"]) for r in rows] == [("usage-user", 2, 1)]
            later = await client.get(f"{base}/usage?since=2999-01-01", headers=as_admin)
            assert later.json() == {"usage": []}
            for bad in ("yesterday", "2026-1-5", "2026-02-30"):
                answer = await client.get(f"{base}/usage?since={bad}", headers=as_admin)
                assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_request", bad
            missing = await client.get(f"{base}/usage?key=nobody", headers=as_admin)
            assert missing.status_code == 404
    finally:
        await identity.aclose()
        install_signer(None)  # the app's gate installed its signer process-wide
