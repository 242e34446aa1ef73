"""Where an agent's tools come from: the :class:`ToolSource` seam and its basic sources.

An agent file declares its tool source (``MCPServers({...})``, ``A2AAgents({...})``, local tools, or
several combined); the runner calls ``await source.get_tools()`` before each run. A source caches and
refreshes on its own, so tools that appear later (a server that started late, a tool added to a
running server) reach the agent without a redeploy.

:class:`ToolSource` is an abstract base class in the manner of pydantic-ai's ``AbstractToolset``: only
``get_tools()`` is abstract; the optional parts have defaults, so a source that only lists tools works
everywhere a source is used (``/health``, builder-arg overrides, shutdown) and no caller probes for
methods:

- ``label``: what logs call the source;
- ``endpoint_names``: the names its endpoints are known by in config overrides (none by default);
- ``with_overrides(urls=..., refresh_s=...)``: a copy with some endpoint URLs or the refresh period
  replaced (what a deployment's builder args change); by default URL overrides fail loudly;
- ``status()``: per-endpoint :class:`SourceStatus` for ``/health`` (empty by default);
- ``aclose()``: release what the source holds (nothing by default).

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
from typing import Any, ClassVar, Self

from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field

from platform_core.backoff import Backoff
from platform_core.errors import ConfigurationError, describe_error
from platform_core.settings import get_settings

logger = logging.getLogger(__name__)


class SourceStatus(BaseModel):
    """What ``/health`` reports about one tool endpoint."""

    ok: bool
    url: str | None = None
    tools: list[str] = Field(default_factory=list)
    error: str | None = None


class ToolSource(abc.ABC):
    """Where an agent's tools come from. Subclasses implement :meth:`get_tools`; the rest is optional."""

    @abc.abstractmethod
    async def get_tools(self) -> list[BaseTool]:
        """The tools currently available (cached; never raises for one unreachable endpoint)."""

    @property
    def label(self) -> str:
        """What logs and error messages call this source."""
        return type(self).__name__

    @property
    def endpoint_names(self) -> frozenset[str]:
        """Names of the endpoints a deployment may point elsewhere with :meth:`with_overrides`."""
        return frozenset()

    def with_overrides(
        self, *, urls: Mapping[str, str] | None = None, refresh_s: float | None = None
    ) -> Self:
        """This source with a deployment's URL and refresh overrides applied (unknown names fail loudly).

        The default has no endpoints: any URL override is a configuration error, ``refresh_s`` is moot.
        """
        if urls:
            raise ConfigurationError(f"tool source {self.label} takes no URL overrides: {sorted(urls)}")
        return self

    def _reject_unknown_endpoints(
        self, urls: Mapping[str, str] | None, *, kind: str = "tool endpoint"
    ) -> None:
        """A URL override must name one of this source's endpoints (a typo fails the deploy)."""
        unknown = set(urls or {}) - self.endpoint_names
        if unknown:
            known = sorted(self.endpoint_names)
            raise ConfigurationError(f"no {kind} named {sorted(unknown)}; known: {known}")

    def status(self) -> dict[str, SourceStatus]:
        """Per-endpoint state for ``/health`` (none by default)."""
        return {}

    async def aclose(self) -> None:
        """Release connections and background tasks (the app's shutdown); nothing by default."""
        return  # a default that does nothing, not a forgotten abstract method


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


class StaticTools(ToolSource):
    """Tools defined in code (local Python tools, tests)."""

    def __init__(self, tools: Sequence[BaseTool]) -> None:
        self._tools = unique_by_name(tools)

    async def get_tools(self) -> list[BaseTool]:
        """The tools given, without duplicate names (a copy: callers may change the list)."""
        return list(self._tools)

    def status(self) -> dict[str, SourceStatus]:
        """One always-healthy ``local`` endpoint."""
        return {"local": SourceStatus(ok=True, tools=[t.name for t in self._tools])}


class CombinedTools(ToolSource):
    """Several sources as one; a source that fails is logged and skipped, the others still count."""

    def __init__(self, *sources: ToolSource) -> None:
        self.sources = sources

    @property
    def label(self) -> str:
        """``CombinedTools(<label of each part>)``."""
        return f"CombinedTools({', '.join(s.label for s in self.sources)})"

    @property
    def endpoint_names(self) -> frozenset[str]:
        """The endpoint names of every part."""
        return frozenset(name for s in self.sources for name in s.endpoint_names)

    def with_overrides(
        self, *, urls: Mapping[str, str] | None = None, refresh_s: float | None = None
    ) -> Self:
        """Each part with the overrides of its own endpoints (and ``refresh_s``)."""
        if not urls and refresh_s is None:
            return self
        self._reject_unknown_endpoints(urls)
        parts = []
        for source in self.sources:
            mine = {k: v for k, v in (urls or {}).items() if k in source.endpoint_names}
            parts.append(source.with_overrides(urls=mine, refresh_s=refresh_s))
        return type(self)(*parts)

    async def get_tools(self) -> list[BaseTool]:
        """Every part's tools, in order, loaded concurrently; a name already taken keeps the first tool."""
        results = await asyncio.gather(*(s.get_tools() for s in self.sources), return_exceptions=True)
        tools: list[BaseTool] = []
        for source, result in zip(self.sources, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                logger.warning("tool source %s failed: %s", source.label, describe_error(result))
                continue
            tools.extend(result)
        return unique_by_name(tools)

    def status(self) -> dict[str, SourceStatus]:
        """Every part's endpoints in one mapping."""
        merged: dict[str, SourceStatus] = {}
        for source in self.sources:
            merged.update(source.status())
        return merged

    async def aclose(self) -> None:
        """Close every part, concurrently."""
        await asyncio.gather(*(source.aclose() for source in self.sources))


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
        """The endpoint as ``/health`` reports it: ok once loaded and while its last load worked."""
        return SourceStatus(
            ok=self.error is None and self.loaded_at is not None,
            url=self.url,
            tools=[t.name for t in self.tools],
            error=self.error,
        )


class RefreshingToolSource(ToolSource):
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
    def label(self) -> str:
        """The class and its endpoint names: ``MCPServers(weather, search)``."""
        return f"{type(self).__name__}({', '.join(self.endpoints)})"

    @property
    def endpoint_names(self) -> frozenset[str]:
        """The keys of ``endpoints``."""
        return frozenset(self.endpoints)

    def with_overrides(
        self, *, urls: Mapping[str, str] | None = None, refresh_s: float | None = None
    ) -> Self:
        """A copy with some endpoints' URLs and/or the refresh period replaced (``self`` when neither)."""
        if not urls and refresh_s is None:
            return self
        self._reject_unknown_endpoints(urls, kind=self.kind)
        clone = copy.copy(self)  # copies __getstate__: the declaration, without state or task
        clone.endpoints = {**self.endpoints, **(urls or {})}
        if refresh_s is not None:
            clone.refresh_s = refresh_s
        return clone

    async def get_tools(self) -> list[BaseTool]:
        """The endpoints' last known tools, after starting (and maybe awaiting) the refresh of those due."""
        states = self._states()
        now = time.monotonic()
        due = [name for name, s in states.items() if now >= s.next_attempt]
        if due and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.create_task(self._refresh(due), name=f"{type(self).__name__}-refresh")
        if self._refreshing is not None and self._should_wait(due):
            await asyncio.shield(self._refreshing)
        return self._snapshot()

    def status(self) -> dict[str, SourceStatus]:
        """Each endpoint's state by name (resolving URLs first, as :meth:`get_tools` does)."""
        return {name: state.status() for name, state in self._states().items()}

    async def aclose(self) -> None:
        """Stop a refresh in progress (its loads would outlive the app otherwise)."""
        task, self._refreshing = self._refreshing, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

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
        return unique_by_name(tools, owner=f"{self.label}: ")

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
