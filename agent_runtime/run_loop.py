"""The run lifecycle every framework shares: :class:`QueuedAgentRunner`.

A framework runner (LangGraph's :class:`agent_runtime.runner.AgentRunner`, Microsoft Agent Framework's
:class:`agent_runtime.maf.MAFAgentRunner`) only says how one run produces events
(:meth:`QueuedAgentRunner.produce`) and what a failure is called (:meth:`QueuedAgentRunner.error_event`);
this class owns the ``/chat`` contract around it: ``metadata`` first, ``done`` last, always, a failure as
one ``error`` before it, the run's time limit, abort on a lost thread lease, cancel when the caller goes
away.

The run works in its own task that feeds a queue; the caller reads the queue under the run's deadline.
That keeps the time limit exact whatever the consumer does between events, and closing the stream (a
client that went away) cancels the run instead of leaving it working for nobody. Tokens that are already
waiting in the queue when the caller comes back for more leave as one ``token`` event
(:func:`take_ready_tokens`): a consumer as fast as the model sees every token alone, a slower one (a
loaded proxy, a client far away) gets fewer, larger frames instead of a growing backlog.
"""

import abc
import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self

from opentelemetry import trace

from agent_runtime.llm_client import LLMClient
from agent_runtime.metrics import RunMetrics
from agent_runtime.runner_base import BaseAgentRunner, RunnerHealth
from agent_runtime.spec import AgentRuntimeArgs, AgentSpec
from agent_runtime.tools.sources import ToolSource
from agent_runtime.tracing import ToolSpans
from agent_runtime.translation import EventTranslator
from identity.delegation import acting_for
from platform_core.logs import run_log_fields
from platform_core.telemetry import trace_id_of, tracer
from protocols.events import ChatEvent, Done, Error, Metadata, PriorTurn, Token

logger = logging.getLogger(__name__)

_END = object()
_ABORTED = object()
MAX_COALESCED_CHARS = 2048  # a merged token event stays a small frame

Emit = Callable[[ChatEvent], None]
"""How :meth:`QueuedAgentRunner.produce` hands over an event (it never blocks)."""


def take_ready_tokens(
    first: Token, queue: asyncio.Queue[Any], max_chars: int = MAX_COALESCED_CHARS
) -> tuple[Token, object | None]:
    """``first`` joined with the tokens queued right behind it (without waiting for any).

    Returns the merged token and the first queued item that is not a token (``None`` if the queue ran
    out or the size limit was reached first); the caller handles that item next.
    """
    texts, size = [first.text], len(first.text)
    while size < max_chars:
        try:
            item = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        if not isinstance(item, Token):
            return Token(text="".join(texts)), item
        texts.append(item.text)
        size += len(item.text)
    return (first if len(texts) == 1 else Token(text="".join(texts))), None


class QueuedAgentRunner(BaseAgentRunner):
    """A runner whose framework run feeds a queue: the LLM client, the tool source, the limits, the loop.

    Subclasses implement :meth:`produce` and :meth:`error_event` (and the thread methods of
    :class:`BaseAgentRunner`); ``from_args`` passes extra keyword arguments on to their constructor.
    """

    def __init__(
        self,
        spec: AgentSpec,
        *,
        llm: LLMClient | None = None,
        tools: ToolSource | None = None,
        run_timeout_s: float | None = None,
        max_tool_rounds: int | None = None,
    ) -> None:
        self.spec = spec
        self.llm = llm or LLMClient()
        self.tools = tools if tools is not None else spec.tools
        self.run_timeout_s = run_timeout_s or spec.run_timeout_s
        self.max_tool_rounds = spec.max_tool_rounds if max_tool_rounds is None else max_tool_rounds

    @classmethod
    def from_args(cls, spec: AgentSpec, args: AgentRuntimeArgs, **kwargs: Any) -> Self:
        """The runner a deployment builds from its builder args."""
        return cls(
            spec,
            llm=LLMClient(args.llm_base_url, args.llm_model, request_timeout_s=args.llm_request_timeout_s),
            tools=spec.tools.with_overrides(urls=args.mcp_urls, refresh_s=args.tools_refresh_s),
            run_timeout_s=args.run_timeout_s,
            max_tool_rounds=args.max_tool_rounds,
            **kwargs,
        )

    @abc.abstractmethod
    async def produce(
        self,
        user_request: str,
        thread_id: str,
        ledger: EventTranslator,
        emit: Emit,
        history: Sequence[PriorTurn] = (),
    ) -> None:
        """Run the agent on ``user_request`` in ``thread_id``: ``emit`` its events as they happen.

        ``history``: the client's earlier turns, before ``user_request`` (a new thread only).

        ``ledger`` keeps what ``done`` reports (the answer, the usage). An exception ends the run; it
        becomes the run's ``error`` event through :meth:`error_event`.
        """

    @abc.abstractmethod
    def error_event(self, exc: Exception, ledger: EventTranslator) -> Error:
        """The ``error`` event of a run that raised ``exc`` (a code of the contract)."""

    async def stream(
        self,
        user_request: str,
        thread_id: str,
        run_id: str,
        *,
        abort: asyncio.Event | None = None,
        delegation: str | None = None,
        history: Sequence[PriorTurn] = (),
    ) -> AsyncIterator[ChatEvent]:
        """One run as events: ``metadata``, then tokens / tool calls / tool results, ``error``?, ``done``.

        Setting ``abort`` stops the run with a ``thread_claim_lost`` error (its thread lease was lost).
        The run's task (and every task it starts) calls the platform with ``delegation``.
        """
        attributes = {"agent.name": self.name, "agent.thread_id": thread_id, "agent.run_id": run_id}
        # The run's span, a child of the request's (current here).
        span = tracer().start_span(f"agent.run {self.name}", attributes=attributes)
        yield Metadata(thread_id=thread_id, run_id=run_id, agent=self.name, trace_id=trace_id_of(span))
        started = time.monotonic()
        ledger = EventTranslator()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        ids = {"run_id": run_id, "thread_id": thread_id, "agent": self.name}
        # The task copies the context as it is now: the run's delegation, its span as the parent of
        # every call it makes, its ids on every log line.
        with acting_for(delegation), trace.use_span(span, end_on_exit=False), run_log_fields(**ids):
            producer = asyncio.create_task(
                self._feed(user_request, thread_id, ledger, queue, history), name=f"agent-run-{run_id}"
            )
        watcher = asyncio.create_task(_put_when_set(abort, queue, _ABORTED)) if abort is not None else None
        error: Error | None = None
        finished = False
        tool_spans = ToolSpans(span)
        metrics = RunMetrics(self.name, started)
        try:
            async for item in _drain(queue, started, self.run_timeout_s):
                if isinstance(item, _Stopped):
                    error = item.error
                    break
                if isinstance(item, Error):
                    error = item  # the run's failure: its end mark follows
                    continue
                tool_spans.observe(item)
                metrics.observe(item)
                yield item
            finished = True
        finally:
            if watcher is not None:
                watcher.cancel()
            outcome = error.code if error else "ok" if finished else "stopped"
            try:
                await _stop(producer)  # a caller that went away may cancel this wait too
            finally:
                if not finished:
                    logger.info(
                        "run %s thread %s: stopped by the caller (client gone)", run_id, thread_id, extra=ids
                    )
                tool_spans.close()
                span.set_attribute("agent.outcome", outcome)
                span.end()
                metrics.finish(outcome, ledger.usage, self.llm.model_id_if_known)
        if error is not None:
            yield error
        duration_s = round(time.monotonic() - started, 3)
        extra = {**ids, "outcome": outcome, "duration_s": duration_s}
        logger.info("run %s thread %s: %s in %.1fs", run_id, thread_id, outcome, duration_s, extra=extra)
        yield Done(thread_id=thread_id, answer=ledger.final_answer(), usage=ledger.usage)

    async def _feed(
        self,
        user_request: str,
        thread_id: str,
        ledger: EventTranslator,
        queue: asyncio.Queue[Any],
        history: Sequence[PriorTurn],
    ) -> None:
        try:
            await self.produce(user_request, thread_id, ledger, queue.put_nowait, history)
        except Exception as exc:
            event = self.error_event(exc, ledger)
            if event.code == "internal":
                logger.exception("agent %s run failed", self.name)
            else:
                logger.warning("agent %s run failed: %s", self.name, event.message)
            queue.put_nowait(event)
        finally:
            queue.put_nowait(_END)

    async def health(self) -> RunnerHealth:
        """Readiness for ``/health`` (discovers tools and checks the LLM as a side effect)."""
        tools, llm_ok = await asyncio.gather(self.tools.get_tools(), self.llm.check())
        sources = self.tools.status()
        tools_ok = bool(tools) or all(s.ok for s in sources.values())
        return RunnerHealth(
            ready=llm_ok and tools_ok,
            agent=self.name,
            tools=[t.name for t in tools],
            llm=llm_ok,
            model=self.llm.model_id_if_known,
            sources=sources,
        )

    async def aclose(self) -> None:
        """Release the runner's connections (the app's shutdown)."""
        await asyncio.gather(self.llm.aclose(), self.tools.aclose())


@dataclass(frozen=True)
class _Stopped:
    """The loop, not the run, ended it: the time limit or a lost lease."""

    error: Error


async def _drain(queue: asyncio.Queue[Any], started: float, run_timeout_s: float) -> AsyncIterator[Any]:
    """The run's items in order, tokens coalesced, until its end mark, its time limit or its abort."""
    deadline = started + run_timeout_s
    held: object | None = None  # an item take_ready_tokens took out of the queue
    while True:
        item: Any
        if held is not None:
            item, held = held, None
        else:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                message = f"the run exceeded its {run_timeout_s:g}s time limit"
                yield _Stopped(Error(code="timeout", message=message))
                return
        if isinstance(item, Token):
            item, held = take_ready_tokens(item, queue)
        if item is _END:
            return
        if item is _ABORTED:
            message = "another run took over the thread (its claim had expired); this run was stopped"
            yield _Stopped(Error(code="thread_claim_lost", message=message))
            return
        yield item


async def _put_when_set(event: asyncio.Event, queue: asyncio.Queue[Any], item: object) -> None:
    await event.wait()
    queue.put_nowait(item)


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel the run's task and give it a moment to unwind (close its HTTP streams)."""
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=5)
