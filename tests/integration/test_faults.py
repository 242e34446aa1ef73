"""Overload and killed replicas on the real stack, with nothing accepted lost.

The module deploys, beside the offline multi stack, a scripted model slowed down so that a weather run
lasts many seconds (``llm_slow``), a weather MCP server whose upstream answers after 2 s
(``mcp_weather_faults`` on ``sample_upstream_slow``), and a weather agent on both with room for 2 runs
and 1 waiting request (``weather_faults``):

- overload: 2 chats run, then 3 more come at once: exactly 1 waits and then runs, the other 2 get
  ``503 overloaded`` with ``Retry-After`` straight away; every admitted chat ends with ``done``;
- the LLM replica killed mid-answer: the chat ends with an ``error`` event and ``done`` (tokens had been
  streamed: the call is not repeated), Serve starts a new replica, and the next message on the thread is
  answered;
- the agent replica killed mid-run: its stream ends without ``done`` (the proxy cannot finish it), the
  user's message is in the thread, and once the dead replica's claim on the thread has expired the next
  message on it is answered, after the run's open tool calls were closed;
- the MCP replica killed mid-call: the run ends with ``done``, every tool call has a result (the cut-off
  one an error the model read), and once Serve has replaced the replica the next message's tools work;
- the A2A replica killed mid-task: the caller's call fails at once (it does not hang), and once Serve has
  replaced the replica the same context goes on, its thread holding both messages;
- the database restarted mid-run (a PostgreSQL server of the test's own, behind one more weather agent):
  the run in flight ends with ``done``, a chat sent while it is down gets ``503 storage_unavailable``,
  chats succeed again soon after it is back, and the turn committed before it is still there.
"""

import asyncio
import copy
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
from ray import serve

from agent_runtime.a2a.executor import thread_id_for_context
from mcp_servers.weather import (
    SAMPLE_AIR_QUALITY_PATH,
    SAMPLE_FORECAST_PATH,
    SAMPLE_GEOCODING_PATH,
    SAMPLE_NWS_PATH,
)
from protocols.a2a_client import A2ACallError, A2AResult, A2ATaskFailed, a2a_execute_text
from protocols.events import Done, Error, Metadata, Token, ToolCall, ToolResult, parse_sse_lines
from tests.support.private_postgres import PrivatePostgres, postgres_bin_dir
from tests.support.stack import ServeStack, deployed_over, replica_actors

pytestmark = pytest.mark.integration

ROUTE = "/weather-faults"
APP = "weather_faults"
SLOW_LLM_ROUTE = "/llm-slow"
SLOW_LLM_APP = "llm_slow"
TOKEN_DELAY_MS = 40  # a weather answer is hundreds of chunks: each run lasts ~20 s
SLOW_UPSTREAM_ROUTE = "/sample-upstream-slow"
UPSTREAM_LATENCY_MS = 2000  # each tool call waits this long on its upstream: time to kill the MCP server
MCP_APP = "mcp_weather_faults"
MCP_ROUTE = "/mcp-weather-faults"
A2A_APP = "a2a_weather_faults"
A2A_ROUTE = "/a2a-weather-faults"
LEASE_TTL_S = 30  # a dead replica's claim on a thread expires this long after its last renewal


def fault_apps(stack: ServeStack) -> dict[str, Any]:
    """A slowed-down scripted model, tools on a slow upstream, and a weather agent on both with room for
    2 runs and 1 waiting."""
    config = stack.local_config("serve_multi_config.yaml", offline=True)
    apps = {app["name"]: app for app in config["applications"]}
    llm = copy.deepcopy(apps["llm"])
    llm.update(name=SLOW_LLM_APP, route_prefix=SLOW_LLM_ROUTE)
    llm["args"] = {**llm["args"], "backend": "scripted", "scripted_token_delay_ms": TOKEN_DELAY_MS}
    upstream = copy.deepcopy(apps["sample_upstream"])
    upstream.update(name="sample_upstream_slow", route_prefix=SLOW_UPSTREAM_ROUTE)
    upstream["args"] = {**upstream.get("args", {}), "latency_ms": UPSTREAM_LATENCY_MS}
    mcp = copy.deepcopy(apps["mcp_weather"])
    mcp.update(name=MCP_APP, route_prefix=MCP_ROUTE)
    slow = f"{stack.base_url}{SLOW_UPSTREAM_ROUTE}"
    mcp["args"] = {
        **mcp["args"],
        "min_replicas": 1,
        "max_replicas": 1,
        "nws_base_url": slow + SAMPLE_NWS_PATH,
        "open_meteo_forecast_url": slow + SAMPLE_FORECAST_PATH,
        "open_meteo_geocoding_url": slow + SAMPLE_GEOCODING_PATH,
        "open_meteo_air_quality_url": slow + SAMPLE_AIR_QUALITY_PATH,
    }
    agent = copy.deepcopy(apps["weather_agent"])
    agent.update(name=APP, route_prefix=ROUTE)
    agent["args"] = {
        **agent["args"],
        "min_replicas": 1,
        "max_replicas": 1,
        "max_ongoing_requests": 2,
        "max_queued_requests": 1,
        "queue_timeout_s": 300,
        "retry_after_s": 3,
        "llm_base_url": f"{stack.base_url}{SLOW_LLM_ROUTE}/v1",
        "mcp_urls": {"weather": f"{MCP_ROUTE}/mcp"},
    }
    a2a = copy.deepcopy(apps["a2a_weather"])
    a2a.update(name=A2A_APP, route_prefix=A2A_ROUTE)
    a2a["args"] = {**a2a["args"], "route_prefix": A2A_ROUTE, "agent_url": ROUTE, "max_replicas": 1}
    return {**config, "applications": [llm, upstream, mcp, agent, a2a]}


@pytest.fixture(scope="module")
def faults(offline_multi: ServeStack) -> Iterator[ServeStack]:
    with deployed_over(offline_multi, fault_apps(offline_multi), [ROUTE]) as stack:
        yield stack


class Chat(threading.Thread):
    """One chat on its own thread: its status, body or SSE lines, and whether its stream broke."""

    def __init__(
        self, stack: ServeStack, text: str, thread_id: str | None = None, *, route: str = ROUTE
    ) -> None:
        super().__init__(daemon=True)
        self.url = f"{stack.base_url}{route}/chat"
        self.body = {"user_request": text, **({"thread_id": thread_id} if thread_id else {})}
        self.started = threading.Event()  # the answer has begun (status known)
        self.response: httpx.Response | None = None
        self.lines: list[str] = []
        self.error_body = ""
        self.broken: Exception | None = None

    def run(self) -> None:
        try:
            with httpx.stream("POST", self.url, json=self.body, timeout=300) as response:
                self.response = response
                if response.status_code != 200:
                    self.error_body = response.read().decode()
                    return
                for line in response.iter_lines():
                    self.lines.append(line)
                    self.started.set()
        except httpx.HTTPError as exc:  # a stream cut off mid-way
            self.broken = exc
        finally:
            self.started.set()

    def events(self) -> list[Any]:
        return parse_sse_lines(self.lines)

    def wait_for(self, kind: type, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(isinstance(event, kind) for event in self.events()):
            assert time.monotonic() < deadline and self.is_alive(), (
                f"no {kind.__name__} event: {self.lines[-5:]}"
            )
            time.sleep(0.05)


def kill_replica(app_name: str) -> str:
    (name,) = replica_actors(app_name)
    ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
    return name


def wait_replaced(app_name: str, killed: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        deployment = next(iter(serve.status().applications[app_name].deployments.values()))
        alive = replica_actors(app_name)
        if killed not in alive and alive and deployment.replica_states.get("RUNNING", 0) >= 1:
            return
        assert time.monotonic() < deadline, f"Serve did not replace the killed replica of {app_name}"
        time.sleep(0.5)


def history(stack: ServeStack, thread_id: str, route: str = ROUTE) -> list[dict[str, Any]]:
    response = httpx.get(f"{stack.base_url}{route}/threads/{thread_id}", timeout=30)
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


def test_a_full_replica_queues_one_and_refuses_the_rest_with_a_json_503(faults: ServeStack) -> None:
    running = [Chat(faults, f"What is the weather in {city}?") for city in ("Paris", "Seattle")]
    for chat in running:
        chat.start()
    for chat in running:
        assert chat.started.wait(120), "a first chat never started"
        assert chat.response is not None and chat.response.status_code == 200

    extra = [Chat(faults, f"What is the weather in {city}?") for city in ("Berlin", "Tokyo", "Boston")]
    for chat in extra:
        chat.start()
    refused: list[Chat] = []
    deadline = time.monotonic() + 60
    while len(refused) < 2 and time.monotonic() < deadline:
        refused = [c for c in extra if c.response is not None and c.response.status_code != 200]
        time.sleep(0.05)
    # Refused while both first runs still stream: they were not waiting for a slot.
    assert len(refused) == 2, [c.response.status_code if c.response else None for c in extra]
    assert all(c.is_alive() for c in running), "the first runs ended before the refusals came"
    health = httpx.get(f"{faults.base_url}{ROUTE}/health", timeout=30)
    assert health.status_code == 200, "a full replica still answers its health probe"

    for chat in refused:
        assert chat.response is not None
        assert chat.response.status_code == 503
        assert chat.response.headers["retry-after"] == "3"
        assert chat.response.headers["content-type"] == "application/json"
        error = httpx.Response(503, content=chat.error_body).json()["error"]
        assert error["code"] == "overloaded" and "2 running, 1 waiting" in error["message"]

    admitted = [*running, *(c for c in extra if c not in refused)]
    for chat in admitted:
        chat.join(300)
        events = chat.events()
        assert isinstance(events[0], Metadata) and isinstance(events[-1], Done), chat.lines[-5:]


def test_the_llm_replica_killed_mid_answer_ends_the_run_with_an_error_and_done(faults: ServeStack) -> None:
    chat = Chat(faults, "What is the weather in Chicago?")
    chat.start()
    chat.wait_for(Token)  # the model's answer is streaming: a repeat would say it twice
    killed = kill_replica(SLOW_LLM_APP)
    chat.join(120)
    events = chat.events()
    assert chat.broken is None, chat.broken
    assert isinstance(events[-2], Error) and isinstance(events[-1], Done), chat.lines[-6:]
    thread_id = events[0].thread_id

    wait_replaced(SLOW_LLM_APP, killed)
    again = Chat(faults, "And tomorrow?", thread_id)
    again.run()
    assert isinstance(again.events()[-1], Done) and not any(isinstance(e, Error) for e in again.events())
    users = [m["content"] for m in history(faults, thread_id) if m["role"] == "user"]
    assert users == ["What is the weather in Chicago?", "And tomorrow?"]


def test_the_agent_replica_killed_mid_run_loses_no_accepted_message(faults: ServeStack) -> None:
    chat = Chat(faults, "What is the weather in Denver?")
    chat.start()
    chat.wait_for(Token)
    thread_id = chat.events()[0].thread_id
    killed = kill_replica(APP)
    chat.join(120)
    assert not any(isinstance(e, Done) for e in chat.events()), "a dead replica cannot finish its stream"

    wait_replaced(APP, killed)
    faults.wait_ready(ROUTE)
    users = [m["content"] for m in history(faults, thread_id) if m["role"] == "user"]
    assert users == ["What is the weather in Denver?"], "the accepted message was lost"

    # The dead replica's claim on the thread expires within its TTL; until then: 409 thread_busy.
    deadline = time.monotonic() + LEASE_TTL_S + 60
    while True:
        again = Chat(faults, "And in Boulder?", thread_id)
        again.run()
        if again.response is not None and again.response.status_code == 200:
            break
        assert again.response is not None and again.response.status_code == 409, again.error_body
        assert time.monotonic() < deadline, "the dead replica's claim on the thread never expired"
        time.sleep(2)
    events = again.events()
    assert isinstance(events[-1], Done) and not any(isinstance(e, Error) for e in events), again.lines[-6:]
    messages = history(faults, thread_id)
    assert [m["content"] for m in messages if m["role"] == "user"] == [
        "What is the weather in Denver?",
        "And in Boulder?",
    ]
    # Every tool call of the cut-off run has a result (closed as not run where it had none).
    calls = {c["id"] for m in messages for c in m.get("tool_calls", [])}
    results = {m["tool_call_id"] for m in messages if m["role"] == "tool"}
    assert calls <= results


def test_the_mcp_replica_killed_mid_call_gives_the_model_a_result_and_the_run_ends(
    faults: ServeStack,
) -> None:
    chat = Chat(faults, "What is the weather in Portland?")
    chat.start()
    chat.wait_for(ToolCall)  # the call waits on the slow upstream for seconds
    killed = kill_replica(MCP_APP)
    chat.join(180)
    events = chat.events()
    assert chat.broken is None, chat.broken
    assert isinstance(events[-1], Done), chat.lines[-6:]
    # Each tool call has its result: the one cut off is an error the model read (or, had the agent's
    # retry reached a new replica, its answer); nothing is left open.
    calls = {e.id for e in events if isinstance(e, ToolCall)}
    results = {e.id: e.status for e in events if isinstance(e, ToolResult)}
    assert calls and calls == set(results), chat.lines[-10:]
    thread_id = events[0].thread_id

    wait_replaced(MCP_APP, killed)
    again = Chat(faults, "And tomorrow?", thread_id)
    again.run()
    assert isinstance(again.events()[-1], Done) and not any(isinstance(e, Error) for e in again.events())
    assert all(e.status == "ok" for e in again.events() if isinstance(e, ToolResult)), again.lines[-10:]
    users = [m["content"] for m in history(faults, thread_id) if m["role"] == "user"]
    assert users == ["What is the weather in Portland?", "And tomorrow?"]


def a2a_call(stack: ServeStack, text: str, context_id: str) -> A2AResult:
    url = f"{stack.base_url}{A2A_ROUTE}"
    return asyncio.run(a2a_execute_text(url, text, timeout_s=240, context_id=context_id))


def test_the_a2a_replica_killed_mid_task_fails_the_call_and_the_context_goes_on(faults: ServeStack) -> None:
    context_id = f"a2a-kill-{uuid.uuid4().hex[:12]}"
    thread_id = thread_id_for_context(context_id)
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["answer"] = a2a_call(faults, "What is the weather in Houston?", context_id)
        except A2ACallError as exc:
            outcome["error"] = exc

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    deadline = time.monotonic() + 120
    while httpx.get(f"{faults.base_url}{ROUTE}/threads/{thread_id}", timeout=30).status_code != 200:
        assert time.monotonic() < deadline and caller.is_alive(), f"the task's run never began: {outcome}"
        time.sleep(0.2)
    killed = kill_replica(A2A_APP)  # the face relaying the task's /chat run
    caller.join(120)
    assert not caller.is_alive(), "the caller hangs on a dead A2A replica"
    assert isinstance(outcome.get("error"), A2ACallError), outcome

    wait_replaced(A2A_APP, killed)
    faults.wait_ready(A2A_ROUTE)
    deadline = time.monotonic() + LEASE_TTL_S + 120
    while True:  # the same context goes on once the cut-off run has let go of its thread
        try:
            answer = a2a_call(faults, "And tomorrow?", context_id)
            break
        except A2ATaskFailed as exc:
            assert "busy" in str(exc), exc
            assert time.monotonic() < deadline, f"the context never went on: {exc}"
            time.sleep(2)
    assert answer.text and answer.context_id == context_id
    messages = history(faults, thread_id)
    users = [m["content"] for m in messages if m["role"] == "user"]
    assert users == ["What is the weather in Houston?", "And tomorrow?"], users
    calls = {c["id"] for m in messages for c in m.get("tool_calls", [])}
    assert calls <= {m["tool_call_id"] for m in messages if m["role"] == "tool"}


PG_ROUTE = "/weather-pg"


def until_answered(stack: ServeStack, text: str, thread_id: str, route: str, timeout_s: float) -> Chat:
    """Send ``text`` on the thread until it is answered (409 while an earlier run's claim lasts, 503 while
    the store is unreachable); the answered chat."""
    deadline = time.monotonic() + timeout_s
    while True:
        chat = Chat(stack, text, thread_id, route=route)
        chat.run()
        if chat.response is not None and chat.response.status_code == 200:
            return chat
        assert chat.response is not None and chat.response.status_code in (409, 503), chat.error_body
        assert time.monotonic() < deadline, f"not answered within {timeout_s:.0f}s: {chat.error_body}"
        time.sleep(2)


def test_a_database_restart_mid_run_loses_no_committed_turn(faults: ServeStack) -> None:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    database = PrivatePostgres(Path(tempfile.mkdtemp(prefix="faults-pg-")), bin_dir)
    database.init()
    database.start()
    config = fault_apps(faults)
    agent = next(app for app in config["applications"] if app["name"] == APP)
    agent.update(name="weather_pg", route_prefix=PG_ROUTE)
    agent["runtime_env"] = {
        **agent.get("runtime_env", {}),
        "env_vars": {**agent.get("runtime_env", {}).get("env_vars", {}), "DATABASE_URL": database.url},
    }
    try:
        with deployed_over(faults, {**config, "applications": [agent]}, [PG_ROUTE]):
            committed = Chat(faults, "What is the weather in Miami?", route=PG_ROUTE)
            committed.run()
            assert isinstance(committed.events()[-1], Done), committed.lines[-5:]
            thread_id, answer = committed.events()[0].thread_id, committed.events()[-1].answer

            running = Chat(faults, "And in Orlando?", thread_id, route=PG_ROUTE)
            running.start()
            running.wait_for(Token)
            database.stop()
            running.join(180)
            assert not running.is_alive() and running.broken is None, running.broken
            assert isinstance(running.events()[-1], Done), running.lines[-6:]

            down = Chat(faults, "What is the weather in Austin?", route=PG_ROUTE)
            down.run()
            assert down.response is not None and down.response.status_code == 503, down.error_body
            assert (
                httpx.Response(503, content=down.error_body).json()["error"]["code"] == "storage_unavailable"
            )

            database.start()
            back = until_answered(faults, "And in Tampa?", thread_id, PG_ROUTE, timeout_s=LEASE_TTL_S + 60)
            assert isinstance(back.events()[-1], Done) and not any(
                isinstance(e, Error) for e in back.events()
            )
            messages = history(faults, thread_id, PG_ROUTE)
            users = [m["content"] for m in messages if m["role"] == "user"]
            # The turn cut off by the restart keeps its user message (it was saved when the run began).
            assert users == ["What is the weather in Miami?", "And in Orlando?", "And in Tampa?"], users
            assert answer in [m["content"] for m in messages if m["role"] == "assistant"]
    finally:
        database.remove()
