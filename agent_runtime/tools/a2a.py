"""Remote A2A agents as LangChain tools, described from their agent cards.

``A2AAgents({"a2a_research": "/a2a-research"})`` is a tool source like ``MCPServers`` (the same
:class:`~agent_runtime.tools.sources.RefreshingToolSource`: ``endpoint_names``, ``with_overrides()``,
``status()``): it resolves each agent's card lazily, retries with backoff, and offers a tool only once
its card is known, so an agent that starts before its A2A peers gains the tools as the peers come up.
Each tool takes ``{"query": str}`` and answers with the remote agent's final answer; a failure (agent
down, timeout, remote task failed) comes back to the model as a tool error ("research agent
unavailable: ...") instead of ending the run.
"""

import re
from collections.abc import Mapping

from a2a.client import ClientCallContext, CredentialService
from a2a.types import AgentCard
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field

from agent_runtime.metrics import count_delegation
from agent_runtime.tools.sources import RefreshingToolSource, resolve_url
from identity.delegation import platform_auth
from platform_core.errors import describe_error
from protocols.a2a_client import (
    A2ACallError,
    A2ATaskFailed,
    A2ATimeout,
    A2AUnavailable,
    a2a_execute_text,
    resolve_card,
)

_TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_DESCRIPTION_CHARS = 1000


class A2AQuery(BaseModel):
    """The arguments of an A2A agent's tool: one self-contained request."""

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


class PlatformCredentials(CredentialService):
    """The bearer an agent of the platform sends another one: the run's delegation (or the platform's).

    Only for an agent behind the platform's own proxy; a third-party A2A agent gets no credential of ours.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._auth = platform_auth()

    async def get_credentials(
        self, security_scheme_name: str, context: ClientCallContext | None
    ) -> str | None:
        """The token for the card's bearer scheme, whatever it is named."""
        return self._auth.token_for(self.url)


def _label(card: AgentCard) -> str:
    return card.name if "agent" in card.name.lower() else f"{card.name} agent"


def a2a_tool(name: str, url: str, card: AgentCard, *, timeout_s: float = 360.0) -> BaseTool:
    """A tool that sends its ``query`` to the A2A agent at ``url`` (whose card is ``card``)."""
    if not _TOOL_NAME_RE.match(name):
        raise ValueError(f"invalid tool name {name!r}: letters, digits, '_' and '-', at most 64")
    label = _label(card)
    credentials = PlatformCredentials(url)

    async def ask_agent(query: str) -> str:
        status = "error"  # an exception none of the cases below names
        try:
            result = await a2a_execute_text(url, query, timeout_s=timeout_s, credentials=credentials)
            status = "ok"
        except A2AUnavailable as exc:
            status = "unavailable"
            raise ToolException(f"{label} unavailable: {exc}") from exc
        except A2ATimeout as exc:
            status = "timeout"
            raise ToolException(f"{label} timed out: {exc}") from exc
        except A2ATaskFailed as exc:
            status = "failed"
            raise ToolException(f"{label} could not complete the request: {exc}") from exc
        except A2ACallError as exc:
            raise ToolException(f"{label} call failed: {exc}") from exc
        finally:
            count_delegation(name, status)
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


class A2AAgents(RefreshingToolSource):
    """Remote A2A agents as tools: ``A2AAgents({"a2a_weather": "/a2a-weather"})``.

    Keys are the tool names; values are routes relative to ``SERVE_BASE_URL`` or absolute base URLs of
    A2A apps (where ``/.well-known/agent-card.json`` lives). ``get_tools()`` waits (at most
    ``card_timeout_s``) only for agents never resolved yet; known cards are refreshed in the background
    every ``refresh_s``.
    """

    kind = "A2A agent"

    def __init__(
        self,
        agents: Mapping[str, str],
        *,
        timeout_s: float = 360.0,
        card_timeout_s: float = 5.0,
        refresh_s: float = 60.0,
    ) -> None:
        for name in agents:
            if not _TOOL_NAME_RE.match(name):
                raise ValueError(f"invalid tool name {name!r}: letters, digits, '_' and '-', at most 64")
        super().__init__(agents, refresh_s=refresh_s)
        self.timeout_s = timeout_s
        self.card_timeout_s = card_timeout_s

    @property
    def agents(self) -> dict[str, str]:
        """Tool name -> route or URL of the A2A app (the ``endpoints`` under their A2A name)."""
        return self.endpoints

    @property
    def load_timeout_s(self) -> float:
        """``card_timeout_s``: loading an agent's tools is fetching its card."""
        return self.card_timeout_s

    def _should_wait(self, due: list[str]) -> bool:
        # A peer that has no tool yet may have just come up: this run waits for its card (bounded).
        states = self._states()
        return any(not states[name].tools for name in due)

    def _resolve_url(self, route_or_url: str) -> str:
        return resolve_url(route_or_url).rstrip("/")

    def _describe_failure(self, exc: Exception, url: str) -> str:
        if isinstance(exc, TimeoutError):
            return f"no agent card from {url} within {self.card_timeout_s:g} s"
        return str(exc) if isinstance(exc, A2ACallError) else describe_error(exc)

    async def _load_tools(self, name: str, url: str) -> list[BaseTool]:
        card = await resolve_card(url, refresh=True)
        return [a2a_tool(name, url, card, timeout_s=self.timeout_s)]
