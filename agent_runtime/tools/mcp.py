"""MCP servers as a tool source: discovery per server, retry with backoff, periodic refresh.

``langchain-mcp-adapters``' ``MultiServerMCPClient.get_tools()`` fails as a whole when one server is
down (an ``ExceptionGroup`` from the transport), so each server is loaded on its own and keeps its own
state; a server that stops answering keeps its last tools (calls to them fail as tool errors).

Refresh is lazy, driven by ``get_tools()`` calls, with backoff after failures (the mechanism shared
with other remote sources: :class:`agent_runtime.tools.sources.RefreshingToolSource`). The caller waits
only for the very first load, or while no server has delivered any tool yet (each load bounded by
``timeout_s``); otherwise the refresh runs in the background and the caller gets the current tools.

Tool errors reach the model as tool results: an MCP ``isError`` result becomes a ``ToolMessage`` with
``status="error"`` in the adapter (``handle_tool_errors=True``); transport failures during a call raise
and are turned into error results by the agent's middleware (see ``agent_runtime.factories``).
"""

from collections.abc import Mapping
from datetime import timedelta

from langchain_core.tools import BaseTool
from langchain_mcp_adapters.sessions import StreamableHttpConnection
from langchain_mcp_adapters.tools import load_mcp_tools

from agent_runtime.tools.sources import RefreshingToolSource


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
        super().__init__(servers, refresh_s=refresh_s)
        self.timeout_s = timeout_s
        self.call_timeout_s = call_timeout_s
        self.prefix_tool_names = prefix_tool_names

    @property
    def servers(self) -> dict[str, str]:
        return self.endpoints

    @property
    def load_timeout_s(self) -> float:
        return self.timeout_s

    def _should_wait(self, due: list[str]) -> bool:
        # A server never tried yet, or no tool at all: this caller waits (at most timeout_s).
        first_look = any(s.loaded_at is None and s.error is None for s in self._states().values())
        return first_look or not self._snapshot()

    async def _load_tools(self, name: str, url: str) -> list[BaseTool]:
        connection = StreamableHttpConnection(
            transport="streamable_http",
            url=url,
            timeout=timedelta(seconds=self.timeout_s),
            sse_read_timeout=timedelta(seconds=self.call_timeout_s),
        )
        return await load_mcp_tools(
            None,
            connection=connection,
            server_name=name,
            tool_name_prefix=self.prefix_tool_names,
            handle_tool_errors=True,
        )
