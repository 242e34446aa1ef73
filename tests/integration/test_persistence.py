"""Durable state on the real stack, on SQLite and on PostgreSQL: conversations outlive replicas and are
shared by all of them, A2A tasks are visible from every replica, one run per thread at a time."""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import ray
from ray import serve

from protocols.events import Done, Metadata, SSEParser, parse_sse_lines
from tests.support.stack import POSTGRES_URL, ROOT, ServeStack, postgres_reachable, replica_actors

pytestmark = pytest.mark.integration


@dataclass
class Durable:
    stack: ServeStack
    backend: str
    agent: str  # route of the SSE agent
    a2a: str  # route of its A2A app
    app_name: str

    def url(self, path: str) -> str:
        return f"{self.stack.base_url}{path}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def durable(
    request: pytest.FixtureRequest, offline_single: ServeStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Durable]:
    backend = request.param
    stack = offline_single
    env = {"PYTHONPATH": str(ROOT), "SERVE_BASE_URL": stack.base_url, "OFFLINE": "1"}
    if backend == "postgresql":
        if not postgres_reachable():
            pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 on this machine")
        env["DATABASE_URL"] = POSTGRES_URL
    else:
        env["DATA_DIR"] = str(tmp_path_factory.mktemp("data"))  # the default embedded SQLite file there
    agent, a2a = f"/weather-agent-{backend}", f"/a2a-weather-{backend}"
    two = {"min_replicas": 2, "max_replicas": 2, "num_cpus": 0.05}
    # Its own slower scripted model: a turn must still be running when the 409 test sends a second one.
    slow_llm = f"/llm-slow-{backend}"
    apps = [
        {
            "name": f"llm_slow_{backend}",
            "route_prefix": slow_llm,
            "import_path": "llm.app:build_app",
            "args": {"backend": "scripted", "scripted_token_delay_ms": 5, "num_cpus": 0.05},
            "runtime_env": {"env_vars": env},
        },
        {
            "name": f"weather_agent_{backend}",
            "route_prefix": agent,
            "import_path": "agents.weather:build_app",
            "args": {**two, "llm_base_url": f"{stack.base_url}{slow_llm}/v1"},
            "runtime_env": {"env_vars": env},
        },
        {
            "name": f"a2a_weather_{backend}",
            "route_prefix": a2a,
            "import_path": "agents.weather:build_a2a_app",
            "args": {**two, "route_prefix": a2a, "agent_url": agent},
            "runtime_env": {"env_vars": env},
        },
    ]
    stack.deploy({"applications": apps})
    stack.wait_ready(agent)
    stack.wait_ready(a2a)
    try:
        yield Durable(stack, backend, agent, a2a, f"weather_agent_{backend}")
    finally:
        stack.remove(*(app["name"] for app in apps))


def turn(durable: Durable, text: str, thread_id: str | None = None) -> tuple[str, str, str]:
    """One chat turn; returns (thread_id, answer, replica that served it)."""
    body = {"user_request": text, "thread_id": thread_id}
    with httpx.stream("POST", durable.url(f"{durable.agent}/chat"), json=body, timeout=120) as response:
        assert response.status_code == 200, response.read()
        events = parse_sse_lines(list(response.iter_lines()))
        replica = response.headers["x-replica-id"]
    assert isinstance(events[0], Metadata) and isinstance(events[-1], Done), events[-3:]
    return events[0].thread_id, events[-1].answer, replica


def history(durable: Durable, thread_id: str) -> list[dict]:
    response = httpx.get(durable.url(f"{durable.agent}/threads/{thread_id}"), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["messages"]


def user_turns(messages: list[dict]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "user"]


CITIES = ["Chicago", "Paris", "Tokyo", "Lisbon", "Sydney", "Kyoto", "London", "New York", "Seattle", "Boston"]


def test_turns_on_different_replicas_share_one_history(durable: Durable) -> None:
    thread_id, replicas, asked = None, set(), []
    for city in CITIES:
        question = f"What is the weather in {city}?"
        thread_id, _, replica = turn(durable, question, thread_id)
        asked.append(question)
        replicas.add(replica)
        if len(replicas) == 2 and len(asked) >= 3:
            break
    assert len(replicas) == 2, "ten turns never reached the second replica"
    for _ in range(4):  # whichever replica answers the read sees every turn, in order
        assert user_turns(history(durable, thread_id)) == asked


def test_conversation_continues_after_every_replica_is_killed(durable: Durable) -> None:
    thread_id, first_answer, _ = turn(durable, "What is the weather in Chicago?")
    killed = replica_actors(durable.app_name)
    assert len(killed) == 2
    for name in killed:
        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
    deadline = time.monotonic() + 180
    while set(replica_actors(durable.app_name)) & set(killed) or not _running(durable.app_name, 2):
        assert time.monotonic() < deadline, "Serve did not replace the killed replicas"
        time.sleep(1)
    durable.stack.wait_ready(durable.agent)
    turn(durable, "And in Paris?", thread_id)
    messages = history(durable, thread_id)
    assert user_turns(messages) == ["What is the weather in Chicago?", "And in Paris?"]
    assert first_answer in [m["content"] for m in messages if m["role"] == "assistant"]


def _running(app_name: str, count: int) -> bool:
    deployment = next(iter(serve.status().applications[app_name].deployments.values()))
    return deployment.replica_states.get("RUNNING", 0) >= count


def test_a_second_message_on_a_busy_thread_is_refused_with_409(durable: Durable) -> None:
    thread_id, _, _ = turn(durable, "What is the weather in Tokyo?")
    url = durable.url(f"{durable.agent}/chat")
    body = {"user_request": "What is the weather in Kyoto this week?", "thread_id": thread_id}
    with httpx.stream("POST", url, json=body, timeout=120) as running:
        parser = SSEParser()
        lines = running.iter_lines()
        while not isinstance(parser.feed(next(lines)), Metadata):
            pass  # the run has claimed the thread once metadata is out
        busy = httpx.post(url, json={"user_request": "Another question", "thread_id": thread_id}, timeout=30)
        rest = list(lines)
    assert busy.status_code == 409, busy.text
    assert busy.json()["error"]["code"] == "thread_busy"
    assert isinstance(parse_sse_lines(rest)[-1], Done), "the running turn was not disturbed"
    turn(durable, "And in London?", thread_id)  # released once the run ended
    assert user_turns(history(durable, thread_id)) == [
        "What is the weather in Tokyo?",
        "What is the weather in Kyoto this week?",
        "And in London?",
    ]


def test_thread_api_reads_and_deletes_conversations(durable: Durable) -> None:
    thread_id, answer, _ = turn(durable, "What is the weather in Seattle this week?")
    messages = history(durable, thread_id)
    assert [m["role"] for m in messages][:2] == ["user", "assistant"]
    calls = [c for m in messages for c in m.get("tool_calls", [])]
    assert {c["name"] for c in calls} >= {"geocode"}
    assert any(m["role"] == "tool" and m["name"] == "geocode" for m in messages)
    assert messages[-1] == {**messages[-1], "role": "assistant", "content": answer}

    deleted = httpx.delete(durable.url(f"{durable.agent}/threads/{thread_id}"), timeout=30)
    assert deleted.status_code == 204
    for _ in range(3):  # gone for every replica
        missing = httpx.get(durable.url(f"{durable.agent}/threads/{thread_id}"), timeout=30)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "thread_not_found"
    invalid = httpx.get(durable.url(f"{durable.agent}/threads/..%2Fetc"), timeout=30)
    assert invalid.status_code in (404, 422)


def test_a2a_task_is_readable_through_every_replica(durable: Durable) -> None:
    headers = {"A2A-Version": "1.0"}
    body = {
        "message": {"messageId": "m-durable", "role": "ROLE_USER", "parts": [{"text": "Weather in Paris?"}]},
        "configuration": {"blocking": True},
    }
    created = httpx.post(durable.url(f"{durable.a2a}/message:send"), json=body, headers=headers, timeout=120)
    assert created.status_code == 200, created.text
    task = created.json()["task"]
    for _ in range(8):  # two replicas behind the proxy: reads land on both
        read = httpx.get(durable.url(f"{durable.a2a}/tasks/{task['id']}"), headers=headers, timeout=30)
        assert read.status_code == 200, read.text
        assert read.json()["status"]["state"] == "TASK_STATE_COMPLETED"
    # the A2A context is the agent's thread: the conversation is in the agent's memory too
    thread = httpx.get(durable.url(f"{durable.agent}/threads/{task['contextId']}"), timeout=30)
    assert thread.status_code == 200 and "Paris" in json.dumps(thread.json())
