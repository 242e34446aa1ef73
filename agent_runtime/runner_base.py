"""The seam between the apps and an agent framework: :class:`BaseAgentRunner`.

The SSE chat app (and through it the A2A app, which relays to ``/chat``) drives an agent only through
this interface: run it as ``/chat`` events, report readiness, warm up, keep its memory in the platform
database, read and forget a thread, shut down. :class:`agent_runtime.runner.AgentRunner` implements it
on LangGraph; a runner on another framework (Microsoft Agent Framework) implements the same methods and
serves behind the same apps unchanged.
"""

import abc
import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

from pydantic import BaseModel, Field

from agent_runtime.spec import AgentSpec
from agent_runtime.state.database import Database, thread_key
from agent_runtime.tools.sources import SourceStatus
from platform_core.backoff import Backoff
from platform_core.errors import describe_error
from protocols.events import ChatEvent, PriorTurn
from protocols.threads import ThreadView

logger = logging.getLogger(__name__)


class RunnerHealth(BaseModel):
    """``GET /health`` body: ready once tools are discovered and the LLM answers."""

    ready: bool
    agent: str
    tools: list[str]
    llm: bool
    model: str | None = None
    sources: dict[str, SourceStatus] = Field(default_factory=dict)


class BaseAgentRunner(abc.ABC):
    """One agent in one replica, as the apps use it. Subclasses set :attr:`spec` and :attr:`run_timeout_s`.

    Abstract: :meth:`stream`, :meth:`health`, :meth:`use_database`, :meth:`read_thread`,
    :meth:`delete_thread`. Given: :attr:`name`, :meth:`thread_key`, :meth:`warm_up` (retries
    :meth:`health` with backoff, then :meth:`prepare`), :meth:`aclose` (closes the tool source).
    """

    spec: AgentSpec
    """The agent's declaration: name, prompt, tool source, limits."""
    run_timeout_s: float
    """Time limit of one run (the chat app holds a thread's lease a little longer)."""

    @property
    def name(self) -> str:
        """The agent's name (from its spec): logs, ``/health`` and thread keys use it."""
        return self.spec.name

    def thread_key(self, thread_id: str) -> str:
        """Where this agent's conversation ``thread_id`` lives in the (possibly shared) store."""
        return thread_key(self.name, thread_id)

    @abc.abstractmethod
    def stream(
        self,
        user_request: str,
        thread_id: str,
        run_id: str,
        *,
        abort: asyncio.Event | None = None,
        delegation: str | None = None,
        history: Sequence[PriorTurn] = (),
    ) -> AsyncIterator[ChatEvent]:
        """One run as events: ``metadata`` first, ``done`` last, always; a failure is one ``error`` before it.

        Setting ``abort`` stops the run with a ``thread_claim_lost`` error (its thread lease was lost);
        closing the iterator (the client went away) cancels the run. ``delegation``: the token the
        run's calls to the platform carry (:mod:`identity.delegation`; None while auth is off).
        ``history``: earlier turns the client kept, for a new thread (the agent sees them before
        ``user_request``, and they are stored with the thread).
        """

    @abc.abstractmethod
    async def health(self) -> RunnerHealth:
        """Readiness for ``/health``; may discover tools and check the LLM as a side effect."""

    @abc.abstractmethod
    async def use_database(self, database: Database) -> None:
        """Keep the agent's memory in the platform database (opened by the app after the runner exists)."""

    @abc.abstractmethod
    async def read_thread(self, thread_id: str) -> ThreadView | None:
        """The stored conversation ``thread_id``, or ``None`` when there is none."""

    @abc.abstractmethod
    async def delete_thread(self, thread_id: str) -> bool:
        """Forget the conversation ``thread_id``; ``False`` when there was none."""

    async def prepare(self) -> None:
        """Build what the first run needs, once :meth:`health` is ready (nothing by default)."""
        return  # a default that does nothing, not a forgotten abstract method

    async def warm_up(self) -> None:
        """Retry (with backoff) until ready, so the first request finds its dependencies resolved."""
        backoff = Backoff(initial_s=0.5, max_s=10.0)
        while True:
            try:
                health = await self.health()
                if health.ready:
                    await self.prepare()
                    logger.info("agent %s ready: tools %s, model %s", self.name, health.tools, health.model)
                    return
                reason = f"llm={health.llm}, tools={health.tools}"
            except Exception as exc:  # keep trying: a dependency may come up later
                reason = describe_error(exc)
            delay = backoff.next_delay()
            logger.info("agent %s not ready (%s); retrying in %.1fs", self.name, reason, delay)
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        """Release the runner's connections (the app's shutdown): by default, its tool source's."""
        await self.spec.tools.aclose()
