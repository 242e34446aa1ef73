"""MCP servers as a tool source: discovery per server, retry with backoff, periodic refresh.

``langchain-mcp-adapters``' ``MultiServerMCPClient.get_tools()`` fails as a whole when one server is
down (an ``ExceptionGroup`` from the transport), so each server is loaded on its own and keeps its own
state; a server that stops answering keeps its last tools (calls to them fail as tool errors).

Refresh is lazy, driven by ``get_tools()`` calls (every run and every ``/health`` probe): a server is
reloaded once its ``refresh_s`` has passed, or after a failure once its backoff delay has. The caller
waits only for the very first load, or while no server has delivered any tool yet (each load bounded
by ``timeout_s``); otherwise the refresh runs in the background and the caller gets the current tools.

Tool errors reach the model as tool results: an MCP ``isError`` result becomes a ``ToolMessage`` with
``status="error"`` in the adapter (``handle_tool_errors=True``); transport failures during a call raise
and are turned into error results by the agent's middleware (see ``agent_runtime.factories``).
"""

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from langchain_core.tools import BaseTool
from langchain_mcp_adapters.sessions import StreamableHttpConnection
from langchain_mcp_adapters.tools import load_mcp_tools

from agent_runtime.backoff import Backoff
from agent_runtime.errors import describe_error
from agent_runtime.tool_sources import SourceStatus, resolve_url, unique_by_name

logger = logging.getLogger(__name__)


@dataclass
class _ServerState:
    url: str
    tools: list[BaseTool] = field(default_factory=list)
    loaded_at: float | None = None
    error: str | None = None
    next_attempt: float = 0.0
    backoff: Backoff = field(default_factory=lambda: Backoff(initial_s=0.5, max_s=15.0))


class MCPServers:
    """Tools of MCP servers over streamable HTTP, e.g. ``MCPServers({"weather": "/mcp-weather/mcp"})``.

    ``servers`` maps a name (used in config overrides and ``/health``) to a route relative to
    ``SERVE_BASE_URL`` or an absolute URL; either must be the exact ``.../mcp`` path (no trailing slash).
    URLs are resolved when tools are first loaded, i.e. in the replica, with the replica's settings.
    """

    def __init__(
        self,
        servers: Mapping[str, str],
        *,
        refresh_s: float = 20.0,
        timeout_s: float = 10.0,
        call_timeout_s: float = 60.0,
        prefix_tool_names: bool = False,
    ) -> None:
        if not servers:
            raise ValueError("MCPServers needs at least one server")
        self.servers = dict(servers)
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        self.call_timeout_s = call_timeout_s
        self.prefix_tool_names = prefix_tool_names
        self._state: dict[str, _ServerState] | None = None
        self._refreshing: asyncio.Task[None] | None = None

    def __getstate__(self) -> dict:
        # Only the declaration travels (Ray pickles deployment args); caches and tasks stay behind.
        return {**self.__dict__, "_state": None, "_refreshing": None}

    def __repr__(self) -> str:
        return f"MCPServers({self.servers!r})"

    @property
    def server_names(self) -> frozenset[str]:
        return frozenset(self.servers)

    def configured(
        self, *, urls: Mapping[str, str] | None = None, refresh_s: float | None = None
    ) -> "MCPServers":
        """A copy with some servers' URLs and/or the refresh period replaced."""
        unknown = set(urls or {}) - self.server_names
        if unknown:
            raise ValueError(f"no MCP server named {sorted(unknown)}; known: {sorted(self.servers)}")
        return MCPServers(
            {**self.servers, **(urls or {})},
            refresh_s=self.refresh_s if refresh_s is None else refresh_s,
            timeout_s=self.timeout_s,
            call_timeout_s=self.call_timeout_s,
            prefix_tool_names=self.prefix_tool_names,
        )

    async def get_tools(self) -> list[BaseTool]:
        states = self._states()
        now = time.monotonic()
        due = [name for name, s in states.items() if now >= s.next_attempt]
        if due and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.create_task(self._refresh(due), name="mcp-tools-refresh")
        first_look = any(s.loaded_at is None and s.error is None for s in states.values())
        if self._refreshing is not None and (first_look or not self._snapshot()):
            # A server never tried yet, or no tool at all: this caller waits (at most timeout_s).
            await asyncio.shield(self._refreshing)
        return self._snapshot()

    def status(self) -> dict[str, SourceStatus]:
        states = self._states()
        return {
            name: SourceStatus(
                ok=s.error is None and s.loaded_at is not None,
                url=s.url,
                tools=[t.name for t in s.tools],
                error=s.error,
            )
            for name, s in states.items()
        }

    def _states(self) -> dict[str, _ServerState]:
        if self._state is None:
            self._state = {name: _ServerState(url=resolve_url(url)) for name, url in self.servers.items()}
        return self._state

    def _snapshot(self) -> list[BaseTool]:
        tools = [tool for s in self._states().values() for tool in s.tools]
        return unique_by_name(tools, owner="MCPServers: ")

    async def _refresh(self, names: list[str]) -> None:
        await asyncio.gather(*(self._load(name) for name in names))

    async def _load(self, name: str) -> None:
        state = self._states()[name]
        connection = StreamableHttpConnection(
            transport="streamable_http",
            url=state.url,
            timeout=timedelta(seconds=self.timeout_s),
            sse_read_timeout=timedelta(seconds=self.call_timeout_s),
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                tools = await load_mcp_tools(
                    None,
                    connection=connection,
                    server_name=name,
                    tool_name_prefix=self.prefix_tool_names,
                    handle_tool_errors=True,
                )
        except Exception as exc:  # one server's failure must not hide the others' tools
            error = describe_error(exc)
            delay = min(state.backoff.next_delay(), self.refresh_s)
            state.next_attempt = time.monotonic() + delay
            if error != state.error:
                logger.warning("MCP server %r at %s: %s (retrying in %.1fs)", name, state.url, error, delay)
            state.error = error
            return
        old_names = {t.name for t in state.tools}
        new_names = {t.name for t in tools}
        if new_names != old_names or state.error is not None:
            logger.info("MCP server %r at %s: tools %s", name, state.url, sorted(new_names))
        state.tools, state.error = tools, None
        state.loaded_at = time.monotonic()
        state.next_attempt = state.loaded_at + self.refresh_s
        state.backoff.reset()
