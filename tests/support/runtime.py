"""Test helpers for the agent runtime tests (no tests here); serve them with ``tests.support.servers``.

- :func:`create_playbook_llm` is an OpenAI-protocol chat model for runtime edge cases the offline
  scripted model is not meant to produce on demand (a model that never stops calling tools, a slow
  model, a model calling a failing tool). Each test registers a *playbook*, keyed by the user message,
  of turns to play in order.
- :func:`create_test_mcp_server` is a small FastMCP server (stateless streamable HTTP at ``/mcp``).
"""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from mcp.server.fastmcp import FastMCP

PLAYBOOK_MODEL_ID = "playbook-test-model"


# --- the playbook LLM -----------------------------------------------------------------------------


@dataclass
class Turn:
    """One model reply: text, tool calls (``[(name, args), ...]``), or both; after ``delay_s``.

    ``args`` is a dict (sent as JSON) or a string sent verbatim as the call's ``arguments``, so a test
    can play a model that emits malformed JSON.
    """

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    delay_s: float = 0.0


@dataclass
class Playbook:
    """Turns played in order within one run; ``then`` is repeated once they are used up.

    By default a request's turn is picked by its place in the conversation (assistant messages after
    the user message), so a playbook can be replayed. ``sequential=True`` plays the turns in the order
    the requests arrive instead: for retries inside one model call, which the stored conversation (and
    so the next request) does not show.
    """

    turns: list[Turn]
    then: Turn = field(default_factory=lambda: Turn(text="That is all I know."))
    sequential: bool = False
    served: int = 0

    def turn(self, index: int) -> Turn:
        return self.turns[index] if index < len(self.turns) else self.then

    def next_turn(self, conversation_index: int) -> Turn:
        index = self.served if self.sequential else conversation_index
        self.served += 1
        return self.turn(index)


@dataclass
class PlaybookLLM:
    app: FastAPI
    playbooks: dict[str, Playbook]
    requests: list[dict[str, Any]]
    traceparents: list[str | None]  # each request's W3C trace context, as it came


def _turn_index(messages: list[dict[str, Any]]) -> tuple[str, int]:
    """The run's user message and how many assistant replies followed it."""
    for position in range(len(messages) - 1, -1, -1):
        if messages[position]["role"] == "user":
            later = messages[position + 1 :]
            return str(messages[position]["content"]), sum(m["role"] == "assistant" for m in later)
    return "", 0


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [part + (" " if i < len(parts) - 1 else "") for i, part in enumerate(parts)]


def create_playbook_llm() -> PlaybookLLM:
    """An OpenAI-compatible ``/v1`` app that plays registered playbooks (streaming and not)."""
    app = FastAPI()
    playbooks: dict[str, Playbook] = {}
    requests: list[dict[str, Any]] = []
    traceparents: list[str | None] = []

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": PLAYBOOK_MODEL_ID, "object": "model", "owned_by": "tests"}]}

    @app.post("/v1/chat/completions", response_model=None)
    async def completions(request: Request) -> JSONResponse | StreamingResponse:
        body = await request.json()
        requests.append(body)
        traceparents.append(request.headers.get("traceparent"))
        user, index = _turn_index(body["messages"])
        playbook = playbooks.get(user, Playbook(turns=[Turn(text=f"You said: {user}")]))
        turn = playbook.next_turn(index)
        calls = [
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "name": name,
                "arguments": args if isinstance(args, str) else json.dumps(args),
            }
            for name, args in turn.tool_calls
        ]
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"  # one per completion, as OpenAI's
        if turn.delay_s:
            await asyncio.sleep(turn.delay_s)
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
            if calls:
                message["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": c["arguments"]},
                    }
                    for c in calls
                ]
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
            return JSONResponse(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": PLAYBOOK_MODEL_ID,
                    "choices": [choice],
                    "usage": usage,
                }
            )

        async def chunks() -> AsyncIterator[str]:
            def frame(delta: dict[str, Any], finish: str | None = None) -> str:
                payload = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": PLAYBOOK_MODEL_ID,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
                return f"data: {json.dumps(payload)}\n\n"

            yield frame({"role": "assistant", "content": ""})
            for word in _words(turn.text) if turn.text else []:
                yield frame({"content": word})
                await asyncio.sleep(0.01)
            for position, call in enumerate(calls):
                head = {"index": position, "id": call["id"], "type": "function"}
                yield frame({"tool_calls": [{**head, "function": {"name": call["name"], "arguments": ""}}]})
                args = call["arguments"]
                for start in range(0, len(args), 5):
                    piece = {"index": position, "function": {"arguments": args[start : start + 5]}}
                    yield frame({"tool_calls": [piece]})
            yield frame({}, "tool_calls" if calls else "stop")
            if (body.get("stream_options") or {}).get("include_usage"):
                tail = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),  # as OpenAI sends it (MAF's client reads it)
                    "model": PLAYBOOK_MODEL_ID,
                    "choices": [],
                    "usage": usage,
                }
                yield f"data: {json.dumps(tail)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    return PlaybookLLM(app=app, playbooks=playbooks, requests=requests, traceparents=traceparents)


# --- a small MCP server -----------------------------------------------------------------------------


def create_test_mcp_server(name: str = "test-tools") -> FastMCP:
    """Tools: ``echo``, ``add``, ``fail`` (an MCP error result) and ``slow``."""
    server = FastMCP(name, stateless_http=True, json_response=True)

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return f"echo: {text}"

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def fail(reason: str) -> str:
        """Always fails with the given reason."""
        raise ValueError(f"failed on purpose: {reason}")

    @server.tool()
    async def slow(seconds: float) -> str:
        """Sleeps for the given number of seconds."""
        await asyncio.sleep(seconds)
        return "slept"

    return server


@contextmanager
def playbook_agent(*, ping_s: float = 0.5) -> Iterator[tuple[PlaybookLLM, str, str]]:
    """The platform's own chat app over the playbook model and a real MCP server, without Ray.

    Yields ``(playbook model, agent URL, model server URL)``; everything stops on exit.
    """
    # Imported here: the runtime imports are heavy and most users of this module need only the model.
    from agent_runtime.chat.app import create_chat_app
    from agent_runtime.llm_client import LLMClient
    from agent_runtime.runner import AgentRunner
    from agent_runtime.spec import AgentSpec
    from agent_runtime.tools.mcp import MCPServers
    from tests.support.servers import ServerThread, serve_mcp

    llm = create_playbook_llm()
    with ServerThread(llm.app) as llm_server:
        mcp = serve_mcp(create_test_mcp_server())
        try:
            tools = MCPServers({"t": f"{mcp.url}/mcp"})
            spec = AgentSpec(name="tester", system_prompt="You test.", tools=tools)
            runner = AgentRunner(spec, llm=LLMClient(f"{llm_server.url}/v1", discovery_timeout_s=1.0))
            with ServerThread(create_chat_app(runner, ping_s=ping_s)) as chat_server:
                yield llm, chat_server.url, llm_server.url
        finally:
            mcp.stop()


def register_playbook(
    llm: PlaybookLLM, *turns: Turn, then: Turn | None = None, sequential: bool = False
) -> str:
    """Register a playbook under a fresh user message; returns that message."""
    key = f"request {uuid.uuid4().hex[:8]}"
    book = Playbook(list(turns), sequential=sequential)
    if then is not None:
        book.then = then
    llm.playbooks[key] = book
    return key


@contextmanager
def playbook_servers() -> Iterator[tuple[PlaybookLLM, str, str]]:
    """The playbook model and the test MCP server on free ports: ``(model, LLM base URL, MCP URL)``."""
    from tests.support.servers import ServerThread, serve_mcp

    llm = create_playbook_llm()
    with ServerThread(llm.app) as llm_server:
        mcp = serve_mcp(create_test_mcp_server())
        try:
            yield llm, f"{llm_server.url}/v1", f"{mcp.url}/mcp"
        finally:
            mcp.stop()


async def hang_up_at_first_tool_call(base_url: str, user_request: str) -> str:
    """Start a chat and close the connection at its first ``tool_call``; returns the thread id."""
    import httpx

    from protocols.events import ToolCall, aiter_sse_events

    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("POST", f"{base_url}/chat", json={"user_request": user_request}) as response:
            async for event in aiter_sse_events(response.aiter_lines()):
                if isinstance(event, ToolCall):
                    break
    return response.headers["x-thread-id"]


async def post_once_free(base_url: str, body: dict[str, Any], timeout_s: float = 30.0) -> Any:
    """``POST /chat`` again until the thread is no longer busy (409): the earlier run has stopped."""
    import httpx

    async with httpx.AsyncClient(timeout=30) as client, asyncio.timeout(timeout_s):
        while (response := await client.post(f"{base_url}/chat", json=body)).status_code == 409:
            await asyncio.sleep(0.1)
    return response
