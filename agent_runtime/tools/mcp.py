"""MCP servers as a tool source: one open session per server, discovery with retry, periodic refresh.

``langchain-mcp-adapters``' ``MultiServerMCPClient.get_tools()`` fails as a whole when one server is
down (an ``ExceptionGroup`` from the transport), so each server is loaded on its own and keeps its own
state; a server that stops answering keeps its last tools (calls to them fail as tool errors).

Sessions: the adapter, given a connection, opens a new MCP session for every tool call (``initialize``,
the ``initialized`` notification, the call, and a ``tools/list`` to validate the result, each a request
through the Serve proxy) and builds a new ``httpx`` client with a new TLS context for each. Here each
server has one long-lived :class:`MCPSession` per event loop (a replica has one): discovery and every
call go over it, so a call is one ``tools/call`` request on a pooled connection. The platform's MCP
servers are stateless (``stateless_http=True``), so any replica behind the proxy answers any request of
the session. A session that broke (its transport failed) is replaced by a new one at the next use; a call
is sent again on the new session only when it never reached the server (the old session was already
closed, or the connection could not even be opened); otherwise it fails as a tool error.

Refresh is lazy, driven by ``get_tools()`` calls, with backoff after failures (the mechanism shared
with other remote sources: :class:`agent_runtime.tools.sources.RefreshingToolSource`). The caller waits
only for the very first load, or while no server has delivered any tool yet (each load bounded by
``timeout_s``); otherwise the refresh runs in the background and the caller gets the current tools.

Tool errors reach the model as tool results: an MCP ``isError`` result becomes a ``ToolMessage`` with
``status="error"`` in the adapter (``handle_tool_errors=True``); a failed call (server unreachable,
broken session, JSON-RPC error) raises :class:`MCPCallError`, which the agent's middleware turns into an
error result (see ``agent_runtime.factories``).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

import anyio
import httpx
from langchain_core.tools import BaseTool
from langchain_mcp_adapters.interceptors import MCPToolCallRequest, MCPToolCallResult
from langchain_mcp_adapters.sessions import StreamableHttpConnection
from langchain_mcp_adapters.tools import convert_mcp_tool_to_langchain_tool
from mcp import ClientSession, McpError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CONNECTION_CLOSED, CallToolResult
from mcp.types import Tool as MCPTool

from agent_runtime.tools.sources import RefreshingToolSource
from identity.delegation import platform_auth
from platform_core.errors import describe_error, root_causes
from platform_core.telemetry import trace_carrier

logger = logging.getLogger(__name__)

MAX_TOOL_PAGES = 100
_T = TypeVar("_T")

# Raised by a session's streams once it is closed: a request written then never left this process.
_CLOSED_STREAM_ERRORS = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)


class MCPCallError(RuntimeError):
    """A tool call that got no result from its MCP server (the model sees the message as the result)."""


class _NotSent(Exception):
    """The request never reached the server (no session could be opened, or it was already closed)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(describe_error(cause))
        self.cause = cause


class _Broken(_NotSent):
    """The session broke while the request was out: it may have reached the server."""


class _Ended(Exception):
    """The session ended while a request waited for its answer."""


class MCPSession:
    """One initialized MCP client session to one server over streamable HTTP, in one event loop.

    A background task owns the HTTP client, the transport and the session (anyio contexts must be
    entered and left by the same task); requests from any task of the loop share them. When the transport
    fails, the task ends, :attr:`broken` turns true and pending requests fail; its owner
    (:class:`MCPServers`) then opens a new session for the next request.
    """

    def __init__(self, url: str, *, timeout_s: float, call_timeout_s: float) -> None:
        """A session to ``url``, opened by its first request."""
        self.url = url
        self.timeout_s = timeout_s
        self.call_timeout_s = call_timeout_s
        self.loop = asyncio.get_running_loop()
        self.failure: BaseException | None = None
        self._ready: asyncio.Future[ClientSession] = self.loop.create_future()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def broken(self) -> bool:
        """Whether the session has ended (failed, or closed)."""
        return self._task is not None and self._task.done()

    @property
    def opened(self) -> bool:
        """Whether the session was initialized (it may have ended since: :attr:`broken`)."""
        return self._ready.done() and self._ready.exception() is None

    async def open(self) -> ClientSession:
        """Connect and initialize once (waiting at most ``timeout_s``); raises what prevented it."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mcp-session {self.url}")
        async with asyncio.timeout(self.timeout_s):
            return await asyncio.shield(self._ready)

    async def list_tools(self) -> list[MCPTool]:
        """Every tool of the server (all pages)."""
        session = await self.open()
        tools: list[MCPTool] = []
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            page = await self._until_ended(session.list_tools(cursor))
            tools.extend(page.tools)
            cursor = page.nextCursor
            if not cursor:
                return tools
        raise MCPCallError(f"MCP server at {self.url} listed more than {MAX_TOOL_PAGES} pages of tools")

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        """One ``tools/call``.

        Raises :class:`_NotSent` when the request never reached the server, :class:`_Broken` when the
        session broke while it was out, ``McpError`` for a JSON-RPC error answer.
        """
        try:
            session = await self.open()
        except Exception as exc:
            raise _NotSent(exc) from exc
        timeout = timedelta(seconds=self.call_timeout_s)
        try:
            # The session outlives this run: the run's trace context goes in the call's own _meta.
            call = session.call_tool(
                name, arguments, read_timeout_seconds=timeout, meta=trace_carrier() or None
            )
            return await self._until_ended(call)
        except _CLOSED_STREAM_ERRORS as exc:
            raise _NotSent(exc) from exc
        except McpError as exc:
            if exc.error.code != CONNECTION_CLOSED:
                raise
            raise await self._why_ended(exc) from exc
        except _Ended as exc:
            raise await self._why_ended(exc) from exc

    async def _until_ended(self, request: Awaitable[_T]) -> _T:
        """``request``'s answer, or :class:`_Ended` when the session ends first.

        A transport that fails does not fail the requests it carries (they would wait for their read
        timeout), so each request races the session's task.
        """
        assert self._task is not None
        pending = asyncio.ensure_future(request)
        try:
            await asyncio.wait({pending, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not pending.done():
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
        if pending.cancelled():
            raise _Ended()
        return pending.result()

    async def _why_ended(self, exc: BaseException) -> Exception:
        """Why the session ended under a request: :class:`_NotSent` or :class:`_Broken`.

        Not sent when the transport broke only because it could not connect at all (so no request
        reached the server since).
        """
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=self.timeout_s)
        failure = self.failure or exc
        if all(isinstance(leaf, httpx.ConnectError) for leaf in root_causes(failure)):
            return _NotSent(failure)
        return _Broken(failure)

    async def aclose(self) -> None:
        """End the session (waits for its task, at most ``timeout_s``)."""
        self._closing.set()
        if self._task is not None and not self._task.done():
            done, _ = await asyncio.wait({self._task}, timeout=self.timeout_s)
            if not done:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        self._fail_open(MCPCallError(f"MCP session to {self.url} closed"))

    def _fail_open(self, exc: Exception) -> None:
        if not self._ready.done():
            self._ready.set_exception(exc)
            self._ready.exception()  # retrieved: a waiter that timed out must not leave a warning

    async def _run(self) -> None:
        timeout = httpx.Timeout(self.timeout_s, read=self.call_timeout_s)
        try:
            async with (
                # A session outlives the run that opened it: it authenticates as the platform, never
                # as a user (identity.delegation).
                httpx.AsyncClient(
                    timeout=timeout, follow_redirects=False, auth=platform_auth(delegate=False)
                ) as http,
                streamable_http_client(self.url, http_client=http) as (read, write, _),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                self._ready.set_result(session)
                await self._closing.wait()
        except Exception as exc:  # the transport's ExceptionGroup, a failed initialize, ...
            self.failure = exc
            self._fail_open(exc)
            if not self._closing.is_set():
                logger.info("MCP session to %s ended: %s", self.url, describe_error(exc))
        finally:
            self._fail_open(MCPCallError(f"MCP session to {self.url} ended"))


class _CallOverSession:
    """The adapter's tool-call interceptor: sends each call over the server's open session.

    It never calls ``handler``, which would open a session of its own.
    """

    def __init__(self, source: "MCPServers", server: str) -> None:
        self.source = source
        self.server = server

    async def __call__(
        self,
        request: MCPToolCallRequest,
        handler: Callable[[MCPToolCallRequest], Awaitable[MCPToolCallResult]],
    ) -> MCPToolCallResult:
        return await self.source.call_tool(self.server, request.name, request.args)


class MCPServers(RefreshingToolSource):
    """Tools of MCP servers over streamable HTTP, e.g. ``MCPServers({"weather": "/mcp-weather/mcp"})``.

    ``servers`` maps a name (used in config overrides and ``/health``) to a route relative to
    ``SERVE_BASE_URL`` or an absolute URL; either must be the exact ``.../mcp`` path (no trailing slash).
    URLs are resolved when tools are first loaded, i.e. in the replica, with the replica's settings.
    """

    kind = "MCP server"

    def __init__(
        self,
        servers: Mapping[str, str],
        *,
        refresh_s: float = 20.0,
        timeout_s: float = 10.0,
        call_timeout_s: float = 60.0,
        prefix_tool_names: bool = False,
    ) -> None:
        """Servers by name; ``timeout_s`` bounds connecting and discovery, ``call_timeout_s`` one call."""
        super().__init__(servers, refresh_s=refresh_s)
        self.timeout_s = timeout_s
        self.call_timeout_s = call_timeout_s
        self.prefix_tool_names = prefix_tool_names
        self._sessions: dict[str, MCPSession] = {}

    def __getstate__(self) -> dict[str, Any]:
        """The declaration only: sessions belong to the process and event loop that opened them."""
        return {**super().__getstate__(), "_sessions": {}}

    @property
    def servers(self) -> dict[str, str]:
        """Server names and their routes or URLs, as declared (overrides applied)."""
        return self.endpoints

    @property
    def load_timeout_s(self) -> float:
        """Longest time one server's discovery may take."""
        return self.timeout_s

    async def call_tool(self, server: str, name: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call ``name`` on ``server`` over its open session; raises :class:`MCPCallError` without a result.

        A call that never left (no session could be opened, or the session had closed) goes out once
        more on a new session; one that may have reached the server is not sent again.
        """
        url = self._states()[server].url
        failure: BaseException | None = None
        for _ in range(2):
            session = self._session(server)
            try:
                return await session.call_tool(name, arguments)
            except _Broken as exc:
                failure = exc.cause
                break
            except _NotSent as exc:
                failure = exc.cause
                logger.info("MCP server %r: %s; the call never went out", server, describe_error(failure))
            except McpError as exc:
                raise MCPCallError(f"MCP server {server!r} at {url}: {exc.error.message}") from exc
        assert failure is not None
        raise MCPCallError(f"MCP server {server!r} at {url}: {describe_error(failure)}")

    async def aclose(self) -> None:
        """Stop the refresh and close every session."""
        await super().aclose()
        sessions, self._sessions = self._sessions, {}
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(s.aclose() for s in sessions.values() if s.loop is loop))

    def _should_wait(self, due: list[str]) -> bool:
        # A server never tried yet, or no tool at all: this caller waits (at most timeout_s).
        first_look = any(s.loaded_at is None and s.error is None for s in self._states().values())
        return first_look or not self._snapshot()

    def _session(self, server: str) -> MCPSession:
        """The server's session in this event loop: a new one when there is none or it broke.

        Its first request opens it; requests that come meanwhile wait for the same opening.
        """
        loop = asyncio.get_running_loop()
        session = self._sessions.get(server)
        if session is None or session.loop is not loop or session.broken:
            url = self._states()[server].url
            session = MCPSession(url, timeout_s=self.timeout_s, call_timeout_s=self.call_timeout_s)
            self._sessions[server] = session
        return session

    async def _load_tools(self, name: str, url: str) -> list[BaseTool]:
        session = self._session(name)
        try:
            tools = await session.list_tools()
        except Exception:
            if session.broken or not session.opened:  # an open session stays: calls may be using it
                await self._discard(name, session)  # the next load starts from a new session
            raise
        connection = StreamableHttpConnection(transport="streamable_http", url=url)  # never opened
        interceptor = _CallOverSession(self, name)
        return [
            convert_mcp_tool_to_langchain_tool(
                None,
                tool,
                connection=connection,
                tool_interceptors=[interceptor],
                server_name=name,
                tool_name_prefix=self.prefix_tool_names,
                handle_tool_errors=True,
            )
            for tool in tools
        ]

    async def _discard(self, server: str, session: MCPSession) -> None:
        if self._sessions.get(server) is session:
            del self._sessions[server]
        await session.aclose()
