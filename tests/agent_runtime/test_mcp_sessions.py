"""MCP tool calls share one open session per server: no handshake per call, recovery when it breaks.

The server is a real FastMCP server over loopback HTTP, wrapped to record the JSON-RPC method of every
request it receives, so the tests count what crossed the wire.
"""

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_runtime.tools.mcp import MCPCallError, MCPServers
from tests.support.runtime import create_test_mcp_server
from tests.support.servers import ServerThread, free_port


class RequestLog:
    """ASGI wrapper that records the JSON-RPC ``method`` of every POST it passes on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.methods: list[str] = []

    def count(self, method: str) -> int:
        return self.methods.count(method)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            self.methods.append(str(json.loads(body).get("method")))
        except ValueError:
            self.methods.append("?")

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


class LoggedServer:
    """A test MCP server (a new FastMCP instance per start) on a fixed port, with its request log."""

    def __init__(self) -> None:
        self.port = free_port()
        self.thread: ServerThread | None = None
        self.log = RequestLog(create_test_mcp_server().streamable_http_app())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        self.log = RequestLog(create_test_mcp_server().streamable_http_app())
        self.thread = ServerThread(self.log, port=self.port).start()

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread = None


@pytest.fixture
def server() -> Iterator[LoggedServer]:
    logged = LoggedServer()
    logged.start()
    try:
        yield logged
    finally:
        logged.stop()


def by_name(tools: list[BaseTool]) -> dict[str, BaseTool]:
    return {t.name: t for t in tools}


async def call(tool: BaseTool, call_id: str = "c1", **args: Any) -> ToolMessage:
    """Call a tool the way the agent's tool node does (a tool call in, a ToolMessage out)."""
    result = await tool.ainvoke({"type": "tool_call", "id": call_id, "name": tool.name, "args": args})
    assert isinstance(result, ToolMessage)
    return result


def text(message: ToolMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(block["text"] for block in content if isinstance(block, dict) and "text" in block)


async def test_calls_share_one_session_no_handshake_per_call(server: LoggedServer) -> None:
    source = MCPServers({"t": server.url}, refresh_s=600)
    try:
        tools = by_name(await source.get_tools())
        for i in range(5):
            assert text(await call(tools["add"], a=i, b=1)) == str(i + 1)
        results = await asyncio.gather(*(call(tools["echo"], f"c{i}", text=str(i)) for i in range(20)))
        assert [text(r) for r in results] == [f"echo: {i}" for i in range(20)]

        assert server.log.count("initialize") == 1  # one session, opened for discovery
        assert server.log.count("notifications/initialized") == 1
        assert server.log.count("tools/list") == 1  # discovery; the calls validate against its schemas
        assert server.log.count("tools/call") == 25
    finally:
        await source.aclose()


async def test_a_tool_error_is_an_error_result_and_the_session_stays_usable(server: LoggedServer) -> None:
    source = MCPServers({"t": server.url}, refresh_s=600)
    try:
        tools = by_name(await source.get_tools())
        failed = await call(tools["fail"], reason="bad input")
        assert failed.status == "error" and "failed on purpose: bad input" in text(failed)
        assert text(await call(tools["echo"], text="after")) == "echo: after"
        assert server.log.count("initialize") == 1
    finally:
        await source.aclose()


async def test_a_server_restart_between_calls_recovers(server: LoggedServer) -> None:
    source = MCPServers({"t": server.url}, refresh_s=600)
    try:
        tools = by_name(await source.get_tools())
        assert text(await call(tools["echo"], text="one")) == "echo: one"
        server.stop()
        server.start()  # a new process on the same port (stateless: it serves the open session too)
        assert text(await call(tools["echo"], text="two")) == "echo: two"
        assert server.log.count("tools/call") == 1
    finally:
        await source.aclose()


async def test_a_call_while_the_server_is_down_fails_clearly_then_a_new_session_serves(
    server: LoggedServer,
) -> None:
    source = MCPServers({"t": server.url}, refresh_s=600, timeout_s=5)
    try:
        tools = by_name(await source.get_tools())
        server.stop()
        with pytest.raises(MCPCallError, match=r"MCP server 't' at .*ConnectError"):
            await call(tools["echo"], text="lost")  # the agent's middleware makes it an error result
        server.start()
        assert text(await call(tools["echo"], text="back")) == "echo: back"
        assert server.log.count("initialize") == 1  # the restarted server saw a new session opened
    finally:
        await source.aclose()


async def test_refresh_rediscovers_tools_over_the_open_session(server: LoggedServer) -> None:
    source = MCPServers({"t": server.url}, refresh_s=0.1)
    try:
        assert "add" in by_name(await source.get_tools())
        async with asyncio.timeout(30):
            while server.log.count("tools/list") < 3:  # refreshes ran (each one tools/list)
                await asyncio.sleep(0.15)
                await source.get_tools()
        assert server.log.count("initialize") == 1
    finally:
        await source.aclose()
