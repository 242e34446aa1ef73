"""Test helpers for the UI tests (no tests here): an agent that speaks the public ``/chat`` contract.

:func:`create_scripted_agent` streams fixed event sequences chosen by keywords in the request, and serves
``GET /threads/{id}`` from what it answered (switchable, to exercise the UI's browser-cache fallback).
It stands in for a deployed agent in tests that need exact control over events, HTTP errors and broken
streams; tests against the real chat app use the playbook LLM of ``tests.support.runtime``.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from protocols.events import ChatEvent, Done, Error, Metadata, Token, ToolCall, ToolResult, Usage, encode_sse

TRIP_ANSWER = (
    "Day 1: Alfama and the castle (sample data). Day 2: Belém indoors, rain expected. Day 3: Sintra."
)
USAGE = Usage(prompt_tokens=321, completion_tokens=54)


@dataclass
class ScriptedAgent:
    app: FastAPI
    threads: dict[str, list[dict[str, Any]]]
    threads_api: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [part + (" " if i < len(parts) - 1 else "") for i, part in enumerate(parts)]


def _script(request: str, thread_id: str) -> tuple[list[ChatEvent], list[dict[str, Any]], bool]:
    """Events for a request, the thread messages they add, and whether the stream ends with ``done``."""
    meta = Metadata(thread_id=thread_id, run_id=uuid.uuid4().hex, agent="travel")
    text = request.lower()
    if "trip" in text:
        calls = [
            ToolCall(id="c1", name="a2a_weather", args={"message": "Forecast for Lisbon next week?"}),
            ToolCall(id="c2", name="a2a_research", args={"message": "Sights in Lisbon?"}),
        ]
        results = [
            ToolResult(id="c1", name="a2a_weather", status="ok", content="Sunny, 24 °C (SAMPLE DATA)"),
            ToolResult(id="c2", name="a2a_research", status="ok", content="Alfama, Belém, Sintra " * 40),
        ]
        events = [meta, *calls, *results, *(Token(text=w) for w in _words(TRIP_ANSWER))]
        events.append(Done(thread_id=thread_id, answer=TRIP_ANSWER, usage=USAGE))
        history = [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [c.model_dump(exclude={"type"}) for c in calls],
            },
            *({"role": "tool", "content": r.content, "name": r.name, "tool_call_id": r.id} for r in results),
            {"role": "assistant", "content": TRIP_ANSWER},
        ]
        return events, history, True
    if "broken tool" in text:
        call = ToolCall(id="f1", name="get_forecast", args={"latitude": 200, "longitude": 0})
        result = ToolResult(id="f1", name="get_forecast", status="error", content="latitude must be <= 90")
        error = Error(code="llm_unavailable", message="the model endpoint answered 503")
        events = [meta, call, result, error, Done(thread_id=thread_id, answer="", usage=Usage())]
        history = [
            {"role": "assistant", "content": "", "tool_calls": [call.model_dump(exclude={"type"})]},
            {
                "role": "tool",
                "content": result.content,
                "name": result.name,
                "tool_call_id": "f1",
                "status": "error",
            },
        ]
        return events, history, True
    if "cut short" in text:
        return [meta, ToolCall(id="s1", name="slow", args={}), Token(text="Partial")], [], False
    answer = f"You said: {request}"
    events = [
        meta,
        *(Token(text=w) for w in _words(answer)),
        Done(thread_id=thread_id, answer=answer, usage=USAGE),
    ]
    return events, [{"role": "assistant", "content": answer}], True


def create_scripted_agent(*, token_delay_s: float = 0.0) -> ScriptedAgent:
    """``POST /chat`` with scripted answers; ``GET /threads/{id}`` unless ``agent.threads_api`` is off.

    Requests containing "http 500" get a JSON 500 before any stream starts.
    """
    app = FastAPI()
    agent = ScriptedAgent(app=app, threads={})

    @app.post("/chat", response_model=None)
    async def chat(request: Request) -> StreamingResponse | JSONResponse:
        body = await request.json()
        agent.requests.append({"body": body, "authorization": request.headers.get("authorization")})
        if "http 500" in body["user_request"]:
            return JSONResponse({"error": {"code": "internal", "message": "agent exploded"}}, status_code=500)
        thread_id = body.get("thread_id") or uuid.uuid4().hex
        events, history, complete = _script(body["user_request"], thread_id)
        thread = agent.threads.setdefault(thread_id, [])
        thread.append({"role": "user", "content": body["user_request"]})
        thread.extend(history)

        async def frames() -> AsyncIterator[bytes]:
            for event in events:
                yield encode_sse(event).encode()
                if token_delay_s:
                    await asyncio.sleep(token_delay_s)
            if not complete:
                raise ConnectionAbortedError  # a replica dying mid-answer: the body ends without done

        return StreamingResponse(frames(), media_type="text/event-stream", headers={"X-Thread-Id": thread_id})

    @app.get("/threads/{thread_id}")
    async def thread(thread_id: str) -> JSONResponse:
        if not agent.threads_api:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        if thread_id not in agent.threads:
            return JSONResponse(
                {"error": {"code": "thread_not_found", "message": f"no thread {thread_id}"}}, status_code=404
            )
        return JSONResponse({"thread_id": thread_id, "messages": agent.threads[thread_id]})

    return agent
