"""The multi-agent system (serve_multi_config.yaml, offline) on a real Ray Serve instance."""

import asyncio
import time
import uuid
from datetime import datetime

import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.helpers import get_artifact_text
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    TaskState,
)
from a2a.utils.constants import TransportProtocol

from agent_runtime.a2a.executor import thread_id_for_context
from protocols.a2a_client import a2a_execute_text
from protocols.events import Done, Error, ToolCall, ToolResult
from tests.support.stack import ServeStack, chat, scrape_metric, serve_log_records

pytestmark = pytest.mark.integration

TRIP = "Plan a 3-day trip to Lisbon next week."


def a2a_tasks(stack: ServeStack, route: str) -> list[dict]:
    response = httpx.get(f"{stack.base_url}{route}/tasks", headers={"A2A-Version": "1.0"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json().get("tasks", [])


def span(task: dict) -> tuple[datetime, datetime]:
    started = datetime.fromisoformat(task["metadata"]["startedAt"])
    finished = datetime.fromisoformat(task["status"]["timestamp"].replace("Z", "+00:00"))
    return started, finished


DELEGATES = {"a2a_weather": "/a2a-weather", "a2a_research": "/a2a-research", "a2a_packing": "/a2a-packing"}


def test_travel_agent_delegates_to_its_three_agents_concurrently(offline_multi: ServeStack) -> None:
    stack = offline_multi
    before = {route: {t["id"] for t in a2a_tasks(stack, route)} for route in DELEGATES.values()}
    response, events = chat(stack, "/travel-agent", {"user_request": TRIP}, timeout=300)
    assert response.status_code == 200

    first_result = next(i for i, e in enumerate(events) if isinstance(e, ToolResult))
    same_turn = {e.name for e in events[:first_result] if isinstance(e, ToolCall)}
    assert same_turn == set(DELEGATES), events[:first_result]
    results = {e.name: e for e in events if isinstance(e, ToolResult)}
    assert {name: r.status for name, r in results.items()} == dict.fromkeys(DELEGATES, "ok"), results
    # The downstream agents really ran their MCP tools: only those know Lisbon's sample data.
    for forecast in (results["a2a_weather"].content, results["a2a_packing"].content):
        assert "Lisbon" in forecast and "sample" in forecast.lower() and "°" in forecast
    assert "/sample-upstream/pages/" in results["a2a_research"].content

    done = events[-1]
    assert isinstance(done, Done) and "Lisbon" in done.answer
    weather_line = next(line for line in results["a2a_weather"].content.splitlines() if "°" in line)
    assert weather_line.strip()[:40] in done.answer, "the itinerary must use the weather answer"
    assert "/sample-upstream/pages/" in done.answer, "the itinerary must use the research answer"

    spans = {}
    for route in DELEGATES.values():
        new = [t for t in a2a_tasks(stack, route) if t["id"] not in before[route]]
        assert len(new) == 1, f"{route} ran {len(new)} tasks for one travel request"
        assert new[0]["status"]["state"] == "TASK_STATE_COMPLETED"
        spans[route] = span(new[0])
    # They ran at the same time: each began before every other one ended.
    assert max(start for start, _ in spans.values()) < min(end for _, end in spans.values()), spans


def test_a_travel_request_moves_the_agent_metrics_and_logs_its_runs(offline_multi: ServeStack) -> None:
    stack = offline_multi
    counters = {
        "travel runs": ("ray_agent_runs_total", {"agent": "travel", "outcome": "ok"}),
        "weather runs": ("ray_agent_runs_total", {"agent": "weather", "outcome": "ok"}),
        "delegations": ("ray_agent_a2a_delegations_total", {"application": "travel_agent", "status": "ok"}),
        "travel tokens": ("ray_agent_llm_tokens_total", {"agent": "travel", "kind": "output"}),
        "weather tool calls": ("ray_agent_tool_calls_total", {"agent": "weather", "status": "ok"}),
        "first tokens": ("ray_agent_time_to_first_token_seconds_count", {"agent": "travel"}),
    }
    before = {key: scrape_metric(stack, name, **labels) for key, (name, labels) in counters.items()}
    response, events = chat(stack, "/travel-agent", {"user_request": TRIP}, timeout=300)
    assert response.status_code == 200 and isinstance(events[-1], Done)
    metadata = events[0]

    # Ray exports what replicas recorded every few seconds.
    deadline = time.monotonic() + 90
    while True:
        moved = {
            key: scrape_metric(stack, name, **labels) - before[key]
            for key, (name, labels) in counters.items()
        }
        if (moved["delegations"] >= 3 and all(moved.values())) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert moved["travel runs"] >= 1 and moved["weather runs"] >= 1 and moved["delegations"] >= 3, moved
    assert all(value > 0 for value in moved.values()), moved

    # Serve's JSON log files: the run's end line has its ids and trace; the delegate's lines, the same trace.
    [travel_line] = [r for r in serve_log_records("travel_agent") if r.get("run_id") == metadata.run_id]
    assert travel_line["trace_id"] == metadata.trace_id == response.headers["x-trace-id"]
    assert (travel_line["thread_id"], travel_line["agent"], travel_line["outcome"]) == (
        metadata.thread_id,
        "travel",
        "ok",
    )
    assert travel_line["application"] == "travel_agent" and travel_line["request_id"]
    weather_runs = [r for r in serve_log_records("weather_agent") if r.get("trace_id") == metadata.trace_id]
    assert any(r.get("agent") == "weather" and r.get("outcome") == "ok" for r in weather_runs), weather_runs
    tasks = [r for r in serve_log_records("a2a_weather") if r.get("trace_id") == metadata.trace_id]
    assert any(r.get("a2a_task_id") and r["message"].startswith("task ") for r in tasks), tasks


async def test_official_client_over_jsonrpc_and_rest(offline_multi: ServeStack) -> None:
    base = f"{offline_multi.base_url}/a2a-weather"
    for binding in (TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON):
        result = await a2a_execute_text(
            base, "What is the weather in Seattle this week?", transports=(binding,)
        )
        assert "Seattle" in result.text and "sample" in result.text.lower()
        again = await a2a_execute_text(
            base, "And in Chicago?", context_id=result.context_id, transports=(binding,)
        )
        assert again.context_id == result.context_id and "Chicago" in again.text


def test_card_and_raw_v03_message_send(offline_multi: ServeStack) -> None:
    base = f"{offline_multi.base_url}/a2a-weather"
    card = httpx.get(f"{base}/.well-known/agent-card.json", timeout=30).json()  # no header: the 0.3 card
    assert card["name"] and card["skills"] and card["capabilities"]["streaming"] is True
    urls = [card["url"], *(i["url"] for i in card["additionalInterfaces"])]
    assert all(url.startswith(base) for url in urls), urls  # from SERVE_BASE_URL, not a guessed host
    body = {
        "message": {"messageId": "m1", "role": "ROLE_USER", "content": [{"text": "Weather in Paris?"}]},
        "configuration": {"blocking": True},
    }
    response = httpx.post(f"{base}/v1/message:send", json=body, timeout=120)
    assert response.status_code == 200, response.text
    task = response.json()["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert "Paris" in task["artifacts"][0]["parts"][0]["text"]


def user_message(text: str) -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[Part(text=text)])
    )


async def a2a_client(url: str, *, streaming: bool):
    config = ClientConfig(
        streaming=streaming,
        supported_protocol_bindings=[TransportProtocol.JSONRPC],
        httpx_client=httpx.AsyncClient(timeout=120),
    )
    return await ClientFactory(config).create_from_url(url)


async def test_streaming_reports_progress_then_the_answer(offline_multi: ServeStack) -> None:
    client = await a2a_client(f"{offline_multi.base_url}/a2a-weather", streaming=True)
    async with client:
        events = [e async for e in client.send_message(user_message("What is the weather in Kyoto?"))]
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "task" and kinds[-2:] == ["artifact_update", "status_update"]
    progress = [e.status_update.status.message.parts[0].text for e in events if e.HasField("status_update")]
    assert any("geocode" in text for text in progress), progress
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    assert "Kyoto" in get_artifact_text(events[-2].artifact_update.artifact)


def answers_to(messages: list[dict], request: str) -> list[str]:
    """The final answers (assistant messages without tool calls) a thread holds for the user's ``request``."""
    answers: list[str] = []
    asked: str | None = None
    for message in messages:
        if message["role"] == "user":
            asked = message["content"]
        elif message["role"] == "assistant" and asked == request and message["content"]:
            if not message.get("tool_calls"):
                answers.append(message["content"])
    return answers


async def test_cancel_stops_a_running_travel_task(offline_multi: ServeStack) -> None:
    client = await a2a_client(f"{offline_multi.base_url}/a2a-travel", streaming=True)
    agent = f"{offline_multi.base_url}/travel-agent"
    async with client, httpx.AsyncClient(timeout=60) as http:
        stream = client.send_message(user_message(TRIP))
        task = (await anext(stream)).task
        async for event in stream:  # until the travel agent's run is delegating: really running
            if event.HasField("status_update"):
                parts = event.status_update.status.message.parts
                if parts and parts[0].text.startswith("Calling tool "):
                    break
        canceled = await client.cancel_task(CancelTaskRequest(id=task.id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED
        await stream.aclose()

        # The run holds its thread until it has stopped, and a run that went on would answer the trip
        # before it let go: once the thread takes the next message, the trip must still be unanswered.
        thread_id = thread_id_for_context(task.context_id)
        probe = {"user_request": "Thanks, that is all for now.", "thread_id": thread_id}
        async with asyncio.timeout(120):
            while True:
                async with http.stream("POST", f"{agent}/chat", json=probe) as response:
                    if response.status_code != 409:
                        break  # leaving the block closes the stream, which stops the probe's own run
                await asyncio.sleep(0.5)
        assert response.status_code == 200
        view = await http.get(f"{agent}/threads/{thread_id}")
        assert view.status_code == 200, view.text
        messages = view.json()["messages"]
        assert TRIP in [m["content"] for m in messages if m["role"] == "user"]  # the run did start there
        assert answers_to(messages, TRIP) == [], "the canceled run went on and answered"
        stored = await client.get_task(GetTaskRequest(id=task.id))
    assert stored.status.state == TaskState.TASK_STATE_CANCELED


def test_travel_answers_with_weather_when_research_is_down(offline_multi: ServeStack) -> None:
    stack = offline_multi
    research_app = stack.apps["a2a_research"]
    stack.remove("a2a_research")
    try:
        response, events = chat(stack, "/travel-agent", {"user_request": TRIP}, timeout=300)
        assert response.status_code == 200 and isinstance(events[-1], Done)
        # The agent answered by itself, not cut off by its run time limit while waiting for research.
        assert not [e for e in events if isinstance(e, Error)], events
        results = {e.name: e for e in events if isinstance(e, ToolResult)}
        assert results["a2a_weather"].status == "ok"
        assert results["a2a_research"].status == "error"
        answer = events[-1].answer
        assert "Lisbon" in answer and "°" in answer, "the weather part must still be in the answer"
        assert "research" in answer.lower() and ("unavailable" in answer.lower() or "fail" in answer.lower())
    finally:
        stack.deploy({"applications": [research_app]})
