"""Shared pieces of the A2A tests: a test peer that speaks the ``/chat`` SSE contract, and serving apps.

The peer plays the SSE agent the A2A app adapts. What it does is chosen by the request text:

- ``tools: <text>``  → a tool call and its result, then tokens and ``done``;
- ``fail: <text>``   → an ``error`` event, then ``done`` (as the real chat app does);
- ``slow: <text>``   → tokens forever, until the client closes the stream (recorded in ``closed``);
- ``crash: <text>``  → the connection drops mid-stream;
- ``http500``        → a 500 before any stream;
- anything else      → the answer ``echo: <text> [thread <thread_id>]`` in a few tokens, then ``done``.

It records every request and every stream the client closed, so tests can check both sides.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from protocols.events import Done, Error, Metadata, Token, ToolCall, ToolResult, Usage, encode_sse
from tests.support.servers import RoutePrefix, serve_in_loop


@dataclass
class ChatPeer:
    """State of the test peer, shared with the tests."""

    requests: list[dict] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)  # thread ids of streams the client closed early
    slow_started: asyncio.Event = field(default_factory=asyncio.Event)
    ready: bool = True

    def app(self) -> Starlette:
        async def chat(request: Request):
            body = await request.json()
            self.requests.append(body)
            text, thread_id = body["user_request"], body.get("thread_id") or "new-thread"
            if text == "http500":
                return JSONResponse({"detail": "agent exploded"}, status_code=500)
            return EventSourceResponse(self._frames(text, thread_id), headers={"X-Thread-Id": thread_id})

        async def health(_: Request):
            return JSONResponse({"ready": self.ready})

        async def closed(_: Request):
            return JSONResponse(self.closed)  # for checks through a proxy (the peer runs elsewhere)

        routes = [Route("/chat", chat, methods=["POST"]), Route("/health", health), Route("/closed", closed)]
        return Starlette(routes=routes)

    async def _frames(self, text: str, thread_id: str) -> AsyncIterator[dict]:
        def frame(event) -> dict:
            raw = encode_sse(event)
            return {"event": event.type, "data": raw.split("data: ", 1)[1].strip()}

        yield frame(Metadata(thread_id=thread_id, run_id="run-1", agent="peer"))
        if text.startswith("slow:"):
            self.slow_started.set()
            try:
                while True:
                    yield frame(Token(text="."))
                    await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                self.closed.append(thread_id)
                raise
        if text.startswith("crash:"):
            raise RuntimeError("peer crashed mid-stream")  # uvicorn drops the connection
        if text.startswith("tools:"):
            yield frame(ToolCall(id="c1", name="get_forecast", args={"city": "Paris"}))
            yield frame(ToolResult(id="c1", name="get_forecast", status="ok", content="sunny (sample data)"))
        if text.startswith("fail:"):
            yield frame(Error(code="llm_error", message="model backend refused the request"))
            yield frame(Done(thread_id=thread_id, answer=""))
            return
        answer = f"echo: {text} [thread {thread_id}]"
        for word in answer.split(" "):
            yield frame(Token(text=word + " "))
        yield frame(
            Done(thread_id=thread_id, answer=answer, usage=Usage(prompt_tokens=3, completion_tokens=7))
        )


def peer_url_fixture() -> Any:
    """A module-scoped ``peer_url`` fixture, ``(peer, base URL)``: a :class:`ChatPeer` served in the
    test's event loop (its asyncio events are shared with the tests). Use: ``peer_url = peer_url_fixture()``.
    """

    @pytest.fixture(scope="module", name="peer_url")
    async def peer_url() -> AsyncIterator[tuple[ChatPeer, str]]:
        peer = ChatPeer()
        async with serve_in_loop(peer.app()) as url:
            yield peer, url

    return peer_url


def serve_prefixed(app: ASGIApp, prefix: str, port: int | None = None) -> AbstractAsyncContextManager[str]:
    """Serve ``app`` behind the route ``prefix`` in the test's event loop; yields the base URL."""
    return serve_in_loop(RoutePrefix(app, prefix), port)
