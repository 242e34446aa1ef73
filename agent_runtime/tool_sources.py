"""Where an agent's tools come from, as one small protocol.

An agent file declares its tool source (``MCPServers({...})``, later A2A agents as tools, or several
combined); the runner only calls ``await source.get_tools()`` before each run. A source caches and
refreshes on its own, so tools that appear later (a server that started late, a tool added to a
running server) reach the agent without a redeploy.

Optional extras a source may offer (duck-typed, all implemented by the sources in this package):

- ``server_names``: the names its endpoints are known by in config overrides;
- ``configured(urls=..., refresh_s=...)``: a copy with some endpoint URLs or the refresh period
  replaced (what a deployment's builder args change);
- ``status()``: per-endpoint :class:`SourceStatus` for ``/health``.
"""

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field

from agent_runtime.errors import describe_error
from agent_runtime.settings import get_settings

logger = logging.getLogger(__name__)


@runtime_checkable
class ToolSource(Protocol):
    async def get_tools(self) -> list[BaseTool]:
        """The tools currently available (cached; never raises for one unreachable endpoint)."""
        ...


class SourceStatus(BaseModel):
    """What ``/health`` reports about one tool endpoint."""

    ok: bool
    url: str | None = None
    tools: list[str] = Field(default_factory=list)
    error: str | None = None


def resolve_url(route_or_url: str) -> str:
    """Absolute URLs stay as they are; a route (``/mcp-weather/mcp``) goes through ``SERVE_BASE_URL``."""
    if route_or_url.startswith(("http://", "https://")):
        return route_or_url
    if not route_or_url.startswith("/"):
        raise ValueError(f"expected an absolute URL or a route starting with '/': {route_or_url!r}")
    return get_settings().url(route_or_url)


def unique_by_name(tools: Iterable[BaseTool], *, owner: str = "") -> list[BaseTool]:
    """Drop tools whose name an earlier tool already has (the model could not tell them apart)."""
    seen: dict[str, BaseTool] = {}
    for tool in tools:
        if tool.name in seen:
            logger.warning("%sduplicate tool name %r: keeping the first one", owner, tool.name)
            continue
        seen[tool.name] = tool
    return list(seen.values())


def source_status(source: ToolSource) -> dict[str, SourceStatus]:
    """The source's own status report, or an empty one when it has none."""
    status = getattr(source, "status", None)
    return status() if callable(status) else {}


def configure_source(
    source: ToolSource, *, urls: Mapping[str, str] | None = None, refresh_s: float | None = None
) -> ToolSource:
    """Apply a deployment's URL / refresh overrides; unknown endpoint names fail loudly."""
    if not urls and refresh_s is None:
        return source
    configured = getattr(source, "configured", None)
    if configured is None:
        if urls:
            raise ValueError(f"tool source {type(source).__name__} takes no URL overrides: {sorted(urls)}")
        return source
    return configured(urls=urls, refresh_s=refresh_s)


class StaticTools:
    """Tools defined in code (local Python tools, tests)."""

    def __init__(self, tools: Sequence[BaseTool]) -> None:
        self._tools = unique_by_name(tools)

    async def get_tools(self) -> list[BaseTool]:
        return list(self._tools)

    def status(self) -> dict[str, SourceStatus]:
        return {"local": SourceStatus(ok=True, tools=[t.name for t in self._tools])}


class CombinedTools:
    """Several sources as one; a source that fails is logged and skipped, the others still count."""

    def __init__(self, *sources: ToolSource) -> None:
        self.sources = sources

    @property
    def server_names(self) -> frozenset[str]:
        return frozenset(name for s in self.sources for name in getattr(s, "server_names", ()))

    def configured(
        self, *, urls: Mapping[str, str] | None = None, refresh_s: float | None = None
    ) -> "CombinedTools":
        unknown = set(urls or {}) - self.server_names
        if unknown:
            raise ValueError(f"no tool endpoint named {sorted(unknown)}; known: {sorted(self.server_names)}")
        parts = []
        for source in self.sources:
            names = getattr(source, "server_names", frozenset())
            mine = {k: v for k, v in (urls or {}).items() if k in names}
            parts.append(configure_source(source, urls=mine, refresh_s=refresh_s))
        return CombinedTools(*parts)

    async def get_tools(self) -> list[BaseTool]:
        results = await asyncio.gather(*(s.get_tools() for s in self.sources), return_exceptions=True)
        tools: list[BaseTool] = []
        for source, result in zip(self.sources, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                logger.warning("tool source %s failed: %s", type(source).__name__, describe_error(result))
                continue
            tools.extend(result)
        return unique_by_name(tools)

    def status(self) -> dict[str, SourceStatus]:
        merged: dict[str, Any] = {}
        for source in self.sources:
            merged.update(source_status(source))
        return merged
