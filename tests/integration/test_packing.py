"""The packing agent (Microsoft Agent Framework) in the offline multi stack on a real Ray Serve instance.

Needs the ``/packing-agent`` (``agents.packing:build_app``) and ``/a2a-packing``
(``agents.packing:build_a2a_app``) apps in serve_multi_config.yaml.
"""

import copy
import json
import time
import uuid

import httpx
import pytest
import ray
from a2a.utils.constants import TransportProtocol

from protocols.a2a_client import a2a_execute_text
from protocols.events import Done, Error, SSEParser, ToolCall, ToolResult
from tests.support.stack import ServeStack, chat, replica_actors

pytestmark = pytest.mark.integration

REQUEST = "What should I pack for a trip to Seattle this week?"


def test_packing_chat_geocodes_then_forecasts_the_trip_city(offline_multi: ServeStack) -> None:
    response, events = chat(offline_multi, "/packing-agent", {"user_request": REQUEST})
    assert response.status_code == 200 and isinstance(events[-1], Done)
    assert not [e for e in events if isinstance(e, Error)]
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [c.name for c in calls[:2]] == ["geocode", "get_forecast"]
    assert "seattle" in json.dumps(calls[0].args).lower()
    assert abs(calls[1].args["latitude"] - 47.6) < 0.1 and abs(calls[1].args["longitude"] + 122.3) < 0.1
    assert all(e.status == "ok" for e in events if isinstance(e, ToolResult))
    assert "sample" in events[-1].answer.lower()

    thread_id = response.headers["x-thread-id"]
    view = httpx.get(f"{offline_multi.base_url}/packing-agent/threads/{thread_id}", timeout=30).json()
    assert [m["content"] for m in view["messages"] if m["role"] == "user"] == [REQUEST]


async def test_packing_a2a_face_answers_the_sdk_client(offline_multi: ServeStack) -> None:
    base = f"{offline_multi.base_url}/a2a-packing"
    for binding in (TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON):
        result = await a2a_execute_text(base, REQUEST, transports=(binding,))
        assert "Seattle" in result.text and "sample" in result.text.lower()


def test_packing_a2a_v03_message_send(offline_multi: ServeStack) -> None:
    base = f"{offline_multi.base_url}/a2a-packing"
    card = httpx.get(f"{base}/.well-known/agent-card.json", timeout=30).json()  # no header: the 0.3 card
    assert card["name"] == "packing" and card["skills"][0]["id"] == "packing_list"
    body = {
        "message": {"messageId": "m1", "role": "ROLE_USER", "content": [{"text": REQUEST}]},
        "configuration": {"blocking": True},
    }
    response = httpx.post(f"{base}/v1/message:send", json=body, timeout=180)
    assert response.status_code == 200, response.text


def test_a_packing_thread_survives_a_replica_restart(offline_multi: ServeStack) -> None:
    stack = offline_multi
    first, _ = chat(stack, "/packing-agent", {"user_request": REQUEST})
    thread_id, replica = first.headers["x-thread-id"], first.headers["x-replica-id"]
    original = copy.deepcopy(stack.apps["packing_agent"])
    restarted = copy.deepcopy(original)  # a new env var: Serve replaces the replica
    restarted.setdefault("runtime_env", {}).setdefault("env_vars", {})["RESTART_MARK"] = uuid.uuid4().hex
    try:
        stack.deploy({"applications": [restarted]})
        stack.wait_ready("/packing-agent")
        follow_up = "And for Lisbon?"
        second, events = chat(stack, "/packing-agent", {"user_request": follow_up, "thread_id": thread_id})
        assert second.status_code == 200 and second.headers["x-replica-id"] != replica
        assert isinstance(events[-1], Done) and not [e for e in events if isinstance(e, Error)]
        assert "get_world_forecast" in [e.name for e in events if isinstance(e, ToolCall)]
        # The new replica continued the stored session: a lost one would hold the follow-up alone.
        view = httpx.get(f"{stack.base_url}/packing-agent/threads/{thread_id}", timeout=30).json()
        assert [m["content"] for m in view["messages"] if m["role"] == "user"] == [REQUEST, follow_up]
    finally:
        stack.deploy({"applications": [original]})
        stack.wait_ready("/packing-agent")


def _packing_tasks(stack: ServeStack) -> list[dict]:
    response = httpx.get(f"{stack.base_url}/a2a-packing/tasks", headers={"A2A-Version": "1.0"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json().get("tasks", [])


def _packing_task_in_progress(stack: ServeStack, known: set[str]) -> bool:
    """Whether a new packing task reports progress: its /chat run is streaming on a replica."""
    return any(
        task["id"] not in known and task["status"].get("message", {}).get("metadata", {}).get("event")
        for task in _packing_tasks(stack)
    )


def test_travel_gives_a_partial_answer_when_the_packing_agent_dies_mid_run(offline_multi: ServeStack) -> None:
    stack = offline_multi
    original = copy.deepcopy(stack.apps["packing_agent"])
    # A slow scripted model of its own keeps the packing run going while its replicas are killed.
    slow = copy.deepcopy(stack.apps["llm"])
    slow.update(name="llm_slow_packing", route_prefix="/llm-slow-packing")
    slow["args"] = {**slow.get("args", {}), "scripted_token_delay_ms": 150}
    on_slow = copy.deepcopy(original)
    on_slow["args"] = {**on_slow.get("args", {}), "llm_base_url": f"{stack.base_url}/llm-slow-packing/v1"}
    stack.deploy({"applications": [slow, on_slow]})
    stack.wait_ready("/packing-agent")
    known = {t["id"] for t in _packing_tasks(stack)}
    events, killed = [], []
    try:
        body = {"user_request": "Plan a 3-day trip to Lisbon next week."}
        with httpx.stream("POST", f"{stack.base_url}/travel-agent/chat", json=body, timeout=300) as response:
            assert response.status_code == 200
            parser = SSEParser()
            for line in response.iter_lines():
                if (event := parser.feed(line)) is None:
                    continue
                events.append(event)
                if isinstance(event, ToolCall) and event.name == "a2a_packing":
                    deadline = time.monotonic() + 60
                    while not _packing_task_in_progress(stack, known):
                        assert time.monotonic() < deadline, "the packing task never started its run"
                        time.sleep(0.2)
                    killed = replica_actors("packing_agent")
                    for name in killed:
                        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
        assert killed, "no packing agent replica to kill"
        done = events[-1]
        assert isinstance(done, Done), events[-3:]
        assert not [e for e in events if isinstance(e, Error)], "the travel run itself must not fail"
        results = {e.name: e.status for e in events if isinstance(e, ToolResult)}
        assert results == {"a2a_weather": "ok", "a2a_research": "ok", "a2a_packing": "error"}, results
        assert "Lisbon" in done.answer and "°" in done.answer, "the weather part must still be in the answer"
        assert "/sample-upstream/pages/" in done.answer, "the research part must still be in the answer"
        assert "packing" in done.answer.lower()
    finally:
        stack.deploy({"applications": [original]})
        stack.wait_ready("/packing-agent")
        stack.remove("llm_slow_packing")
