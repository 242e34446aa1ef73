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

Sources of remote endpoints (MCP servers, A2A agents) share one mechanism, :class:`RefreshingToolSource`:
per-endpoint state, retry with backoff, lazy background refresh, and pickling of the declaration only.
"""

import abc
import asyncio
import copy
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field

from platform_core.backoff import Backoff
from platform_core.errors import describe_error
from platform_core.settings import get_settings

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


@dataclass
class EndpointState:
    """What a :class:`RefreshingToolSource` knows about one endpoint."""

    url: str
    tools: list[BaseTool] = field(default_factory=list)
    loaded_at: float | None = None
    error: str | None = None
    next_attempt: float = 0.0
    backoff: Backoff = field(default_factory=lambda: Backoff(initial_s=0.5, max_s=15.0))

    def status(self) -> SourceStatus:
        return SourceStatus(
            ok=self.error is None and self.loaded_at is not None,
            url=self.url,
            tools=[t.name for t in self.tools],
            error=self.error,
        )


class RefreshingToolSource(abc.ABC):
    """Tools of named remote endpoints, each loaded on its own and refreshed lazily with backoff.

    ``endpoints`` maps a name (used in config overrides and ``/health``) to a route relative to
    ``SERVE_BASE_URL`` or an absolute URL; URLs are resolved when tools are first wanted, i.e. in the
    replica, with the replica's settings. Refresh is driven by ``get_tools()`` calls (every run and every
    ``/health`` probe): an endpoint is reloaded once ``refresh_s`` has passed, or after a failure once its
    backoff delay has (at most ``refresh_s``). The reload runs as one background task; whether a caller
    waits for it (each load bounded by :attr:`load_timeout_s`) is the subclass's :meth:`_should_wait`.
    An endpoint that stops answering keeps its last tools, and never hides the other endpoints' tools.

    Only the declaration is pickled (Ray ships sources inside deployment args); caches and the refresh
    task stay behind, so every replica loads its own.
    """

    kind: ClassVar[str] = "tool endpoint"  # what an endpoint is called in messages ("MCP server")

    def __init__(self, endpoints: Mapping[str, str], *, refresh_s: float) -> None:
        if not endpoints:
            raise ValueError(f"{type(self).__name__} needs at least one {self.kind}")
        self.endpoints = dict(endpoints)
        self.refresh_s = refresh_s
        self._state: dict[str, EndpointState] | None = None
        self._refreshing: asyncio.Task[None] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_state": None, "_refreshing": None}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoints!r})"

    @property
    def server_names(self) -> frozenset[str]:
        return frozenset(self.endpoints)

    def configured(self, *, urls: Mapping[str, str] | None = None, refresh_s: float | None = None) -> Self:
        """A copy with some endpoints' URLs and/or the refresh period replaced."""
        unknown = set(urls or {}) - self.server_names
        if unknown:
            raise ValueError(f"no {self.kind} named {sorted(unknown)}; known: {sorted(self.endpoints)}")
        clone = copy.copy(self)  # copies __getstate__: the declaration, without state or task
        clone.endpoints = {**self.endpoints, **(urls or {})}
        if refresh_s is not None:
            clone.refresh_s = refresh_s
        return clone

    async def get_tools(self) -> list[BaseTool]:
        states = self._states()
        now = time.monotonic()
        due = [name for name, s in states.items() if now >= s.next_attempt]
        if due and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.create_task(self._refresh(due), name=f"{type(self).__name__}-refresh")
        if self._refreshing is not None and self._should_wait(due):
            await asyncio.shield(self._refreshing)
        return self._snapshot()

    def status(self) -> dict[str, SourceStatus]:
        return {name: state.status() for name, state in self._states().items()}

    # --- what a subclass provides -----------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def load_timeout_s(self) -> float:
        """Longest time one endpoint's load may take (a waiting caller waits at most this long)."""

    @abc.abstractmethod
    async def _load_tools(self, name: str, url: str) -> list[BaseTool]:
        """The tools the endpoint ``name`` at ``url`` offers now; raises when it cannot tell."""

    @abc.abstractmethod
    def _should_wait(self, due: list[str]) -> bool:
        """Whether this ``get_tools()`` call waits for the refresh of the ``due`` endpoints."""

    def _resolve_url(self, route_or_url: str) -> str:
        return resolve_url(route_or_url)

    def _describe_failure(self, exc: Exception, url: str) -> str:
        return describe_error(exc)

    # --- the mechanism ----------------------------------------------------------------------------------

    def _states(self) -> dict[str, EndpointState]:
        if self._state is None:
            self._state = {
                name: EndpointState(url=self._resolve_url(url)) for name, url in self.endpoints.items()
            }
        return self._state

    def _snapshot(self) -> list[BaseTool]:
        tools = [tool for s in self._states().values() for tool in s.tools]
        return unique_by_name(tools, owner=f"{type(self).__name__}: ")

    async def _refresh(self, names: list[str]) -> None:
        await asyncio.gather(*(self._load(name) for name in names))

    async def _load(self, name: str) -> None:
        state = self._states()[name]
        try:
            async with asyncio.timeout(self.load_timeout_s):
                tools = await self._load_tools(name, state.url)
        except Exception as exc:  # one endpoint's failure must not hide the others' tools
            error = self._describe_failure(exc, state.url)
            delay = min(state.backoff.next_delay(), self.refresh_s)
            state.next_attempt = time.monotonic() + delay
            if error != state.error:
                logger.warning(
                    "%s %r at %s: %s (retrying in %.1fs)", self.kind, name, state.url, error, delay
                )
            state.error = error
            return
        new_names = {t.name for t in tools}
        if new_names != {t.name for t in state.tools} or state.error is not None:
            logger.info("%s %r at %s: tools %s", self.kind, name, state.url, sorted(new_names))
        state.tools, state.error = tools, None
        state.loaded_at = time.monotonic()
        state.next_attempt = state.loaded_at + self.refresh_s
        state.backoff.reset()
