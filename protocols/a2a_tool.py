"""Remote A2A agents as LangChain tools, described from their agent cards.

``A2AAgents({"a2a_research": "/a2a-research"})`` is a tool source like ``MCPServers`` (same duck-typed
extras: ``server_names``, ``configured()``, ``status()``): it resolves each agent's card lazily, retries
with backoff, and offers a tool only once its card is known, so an agent that starts before its A2A
peers gains the tools as the peers come up. Each tool takes ``{"query": str}`` and answers with the
remote agent's final answer; a failure (agent down, timeout, remote task failed) comes back to the
model as a tool error ("research agent unavailable: ...") instead of ending the run.
"""

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from a2a.types import AgentCard
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field

from agent_runtime.backoff import Backoff
from agent_runtime.errors import describe_error
from agent_runtime.tool_sources import SourceStatus, resolve_url
from protocols.a2a_client import (
    A2ACallError,
    A2ATaskFailed,
    A2ATimeout,
    A2AUnavailable,
    a2a_execute_text,
    resolve_card,
)

logger = logging.getLogger(__name__)

_TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_DESCRIPTION_CHARS = 1000


class A2AQuery(BaseModel):
    query: str = Field(description="The request for the agent in plain language, with every detail it needs.")


def tool_name_for(card: AgentCard) -> str:
    """``a2a_<slug of the card name>``, valid as an OpenAI function name."""
    slug = re.sub(r"[^a-z0-9]+", "_", card.name.lower()).strip("_") or "agent"
    return f"a2a_{slug}"[:64]


def describe_card(card: AgentCard) -> str:
    """What the model reads to decide when to call the agent: its description and skills."""
    lines = [card.description.strip() or f"The {card.name} agent."]
    for skill in card.skills:
        line = f"- {skill.name}: {skill.description}".rstrip()
        if skill.examples:
            line += f" (e.g. {'; '.join(skill.examples[:2])})"
        lines.append(line)
    text = "\n".join(lines)
    return text if len(text) <= _MAX_DESCRIPTION_CHARS else text[: _MAX_DESCRIPTION_CHARS - 1] + "…"


def _label(card: AgentCard) -> str:
    return card.name if "agent" in card.name.lower() else f"{card.name} agent"


def a2a_tool(name: str, url: str, card: AgentCard, *, timeout_s: float = 360.0) -> BaseTool:
    """A tool that sends its ``query`` to the A2A agent at ``url`` (whose card is ``card``)."""
    if not _TOOL_NAME_RE.match(name):
        raise ValueError(f"invalid tool name {name!r}: letters, digits, '_' and '-', at most 64")
    label = _label(card)

    async def ask_agent(query: str) -> str:
        try:
            result = await a2a_execute_text(url, query, timeout_s=timeout_s)
        except A2AUnavailable as exc:
            raise ToolException(f"{label} unavailable: {exc}") from exc
        except A2ATimeout as exc:
            raise ToolException(f"{label} timed out: {exc}") from exc
        except A2ATaskFailed as exc:
            raise ToolException(f"{label} could not complete the request: {exc}") from exc
        except A2ACallError as exc:
            raise ToolException(f"{label} call failed: {exc}") from exc
        return result.text

    return StructuredTool.from_function(
        coroutine=ask_agent,
        name=name,
        description=describe_card(card),
        args_schema=A2AQuery,
        handle_tool_error=True,
        metadata={"a2a_url": url, "a2a_agent": card.name},
    )


async def a2a_agent_tool(url: str, name: str | None = None, *, timeout_s: float = 360.0) -> BaseTool:
    """Resolve the card at ``url`` (a route or absolute URL) now and make its tool."""
    url = resolve_url(url).rstrip("/")
    card = await resolve_card(url)
    return a2a_tool(name or tool_name_for(card), url, card, timeout_s=timeout_s)


@dataclass
class _AgentState:
    url: str
    tool: BaseTool | None = None
    loaded_at: float | None = None
    error: str | None = None
    next_attempt: float = 0.0
    backoff: Backoff = field(default_factory=lambda: Backoff(initial_s=0.5, max_s=15.0))


class A2AAgents:
    """Remote A2A agents as tools: ``A2AAgents({"a2a_weather": "/a2a-weather"})``.

    Keys are the tool names; values are routes relative to ``SERVE_BASE_URL`` or absolute base URLs of
    A2A apps (where ``/.well-known/agent-card.json`` lives). ``get_tools()`` waits (at most
    ``card_timeout_s``) only for agents never resolved yet; known cards are refreshed in the background
    every ``refresh_s``.
    """

    def __init__(
        self,
        agents: Mapping[str, str],
        *,
        timeout_s: float = 360.0,
        card_timeout_s: float = 5.0,
        refresh_s: float = 60.0,
    ) -> None:
        if not agents:
            raise ValueError("A2AAgents needs at least one agent")
        for name in agents:
            if not _TOOL_NAME_RE.match(name):
                raise ValueError(f"invalid tool name {name!r}: letters, digits, '_' and '-', at most 64")
        self.agents = dict(agents)
        self.timeout_s = timeout_s
        self.card_timeout_s = card_timeout_s
        self.refresh_s = refresh_s
        self._state: dict[str, _AgentState] | None = None
        self._refreshing: asyncio.Task[None] | None = None

    def __getstate__(self) -> dict:
        # Only the declaration travels (Ray pickles deployment args); caches and tasks stay behind.
        return {**self.__dict__, "_state": None, "_refreshing": None}

    def __repr__(self) -> str:
        return f"A2AAgents({self.agents!r})"

    @property
    def server_names(self) -> frozenset[str]:
        return frozenset(self.agents)

    def configured(
        self, *, urls: Mapping[str, str] | None = None, refresh_s: float | None = None
    ) -> "A2AAgents":
        """A copy with some agents' URLs and/or the refresh period replaced."""
        unknown = set(urls or {}) - self.server_names
        if unknown:
            raise ValueError(f"no A2A agent named {sorted(unknown)}; known: {sorted(self.agents)}")
        return A2AAgents(
            {**self.agents, **(urls or {})},
            timeout_s=self.timeout_s,
            card_timeout_s=self.card_timeout_s,
            refresh_s=self.refresh_s if refresh_s is None else refresh_s,
        )

    async def get_tools(self) -> list[BaseTool]:
        states = self._states()
        now = time.monotonic()
        due = [name for name, s in states.items() if now >= s.next_attempt]
        if due and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.create_task(self._refresh(due), name="a2a-cards-refresh")
        if self._refreshing is not None and any(states[n].tool is None for n in due):
            # A peer that has no tool yet may have just come up: this run waits for its card (bounded).
            await asyncio.shield(self._refreshing)
        return [s.tool for s in states.values() if s.tool is not None]

    def status(self) -> dict[str, SourceStatus]:
        return {
            name: SourceStatus(
                ok=s.tool is not None and s.error is None,
                url=s.url,
                tools=[s.tool.name] if s.tool is not None else [],
                error=s.error,
            )
            for name, s in self._states().items()
        }

    def _states(self) -> dict[str, _AgentState]:
        if self._state is None:
            self._state = {
                name: _AgentState(url=resolve_url(url).rstrip("/")) for name, url in self.agents.items()
            }
        return self._state

    async def _refresh(self, names: list[str]) -> None:
        await asyncio.gather(*(self._load(name) for name in names))

    async def _load(self, name: str) -> None:
        state = self._states()[name]
        try:
            async with asyncio.timeout(self.card_timeout_s):
                card = await resolve_card(state.url, refresh=True)
        except Exception as exc:  # one agent's failure must not hide the others' tools
            error = str(exc) if isinstance(exc, A2ACallError) else describe_error(exc)
            if isinstance(exc, TimeoutError):
                error = f"no agent card from {state.url} within {self.card_timeout_s:g} s"
            delay = min(state.backoff.next_delay(), self.refresh_s)
            state.next_attempt = time.monotonic() + delay
            if error != state.error:
                logger.warning("A2A agent %r: %s (retrying in %.1fs)", name, error, delay)
            state.error = error
            return
        if state.tool is None or state.error is not None:
            logger.info("A2A agent %r at %s: card %r resolved", name, state.url, card.name)
        state.tool = a2a_tool(name, state.url, card, timeout_s=self.timeout_s)
        state.error = None
        state.loaded_at = time.monotonic()
        state.next_attempt = state.loaded_at + self.refresh_s
        state.backoff.reset()
