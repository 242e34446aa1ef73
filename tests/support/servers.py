"""Real loopback HTTP for tests: uvicorn servers for any ASGI app, route prefixes as Serve applies them,
and the official MCP client.

- :class:`ServerThread` runs an app in its own thread and event loop, so servers can start late, stop
  and restart on the same port, like services of the platform do.
- :func:`serve_in_loop` runs it in the test's own event loop instead, for apps that share asyncio
  objects (events, queues) with the test.

Both bind the listening socket themselves before the server starts, so the URL is known and no other
process can take the port in between.
"""

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import uvicorn
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.fastmcp import FastMCP
from mcp.types import CallToolResult
from starlette.types import ASGIApp, Receive, Scope, Send

HOST = "127.0.0.1"
START_TIMEOUT_S = 20.0


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    return f"http://{HOST}:{free_port()}"


def _listening_socket(port: int | None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart on a port just used
    sock.bind((HOST, port or 0))
    return sock


def _uvicorn(app: ASGIApp) -> uvicorn.Server:
    # lifespan "on": an app whose startup fails makes the server fail, instead of serving half set up.
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))


class ServerThread:
    """uvicorn serving ``app`` on ``127.0.0.1:port`` (a free port by default) from a background thread.

    ``start()``/``stop()``, or use it as a context manager.
    """

    def __init__(self, app: ASGIApp, port: int | None = None) -> None:
        self.socket = _listening_socket(port)
        self.port: int = self.socket.getsockname()[1]
        self.server = _uvicorn(app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serve_in_thread(app: ASGIApp, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` from a :class:`ServerThread`; yields its base URL."""
    with ServerThread(app, port) as server:
        yield server.url


@asynccontextmanager
async def serve_in_loop(app: ASGIApp, port: int | None = None) -> AsyncIterator[str]:
    """Serve ``app`` from a task of the running event loop; yields its base URL."""
    sock = _listening_socket(port)
    server = _uvicorn(app)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while not server.started:
                if task.done():
                    task.result()  # raises the server's failure
                    raise RuntimeError(f"server on port {sock.getsockname()[1]} did not start")
                await asyncio.sleep(0.02)
        yield f"http://{HOST}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def serve_mcp(server: FastMCP, port: int | None = None) -> ServerThread:
    """Serve ``server`` over streamable HTTP at ``http://127.0.0.1:<port>/mcp`` (started)."""
    return ServerThread(server.streamable_http_app(), port=port).start()


class RoutePrefix:
    """Does what the Serve proxy does for a route prefix: ``root_path`` set, ``path`` left whole."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app, self.prefix = app, prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if not (scope["path"] == self.prefix or scope["path"].startswith(self.prefix + "/")):
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b"no route"})
                return
            scope = dict(scope, root_path=scope.get("root_path", "") + self.prefix)
        await self.app(scope, receive, send)


# --- the official MCP client -------------------------------------------------------------------------


@asynccontextmanager
async def mcp_session(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[ClientSession]:
    """An initialized session of the official MCP client over streamable HTTP."""
    async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=120)) as http_client:
        async with streamable_http_client(url, http_client=http_client) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


async def call_tool(url: str, name: str, arguments: dict[str, Any]) -> CallToolResult:
    """Call one tool in a session of its own."""
    async with mcp_session(url) as session:
        return await session.call_tool(name, arguments)


def tool_text(result: CallToolResult) -> str:
    """The text blocks of a tool result, joined by newlines."""
    return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")
