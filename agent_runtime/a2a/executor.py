"""A2A ``AgentExecutor`` that adapts an SSE agent's ``POST /chat`` stream into an A2A task lifecycle.

The A2A app holds no model and no tools: every A2A message becomes one ``/chat`` run of the same agent,
reached over HTTP through the Serve proxy. The A2A context id maps to the chat ``thread_id``, so the SSE
agent and its A2A twin share one conversation memory. Chat events become task events:

- new task → the ``Task`` (submitted), then ``working``;
- ``tool_call`` / ``tool_result`` / streamed tokens (coalesced) → ``working`` updates with progress text;
- ``done`` → the answer as an artifact, then ``completed`` with a final agent message;
- ``error`` events, HTTP errors, unreachable agent, timeout → ``failed`` with a clear message;
- cancel → the ``/chat`` stream is closed (which cancels the agent's run), then ``canceled``.

Metadata the executor writes follows A2A 1.0 JSON, camelCase keys (the wire contract for callers):

- task: ``startedAt`` (ISO 8601, when the run began), ``threadId`` (the chat thread of the context) and,
  on the terminal status once the chat run reported it, ``runId``;
- progress messages: ``event`` (``tool_call``, ``tool_result``, ``text``), ``tool``, ``status``;
- the ``answer`` artifact and the final message: ``usage`` ``{promptTokens, completionTokens}``.

With a task store shared by several replicas, a cancel may reach a replica that does not run the task:
that replica records ``canceled`` in the store. The running replica re-reads the task's state every
``cancel_check_s`` while it streams and stops its ``/chat`` run once it sees ``canceled``.
"""

import asyncio
import hashlib
import logging
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from a2a.helpers import new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.cluster import StoredTask, VersionedTaskStore
from a2a.server.context import ServerCallContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskStore, TaskUpdater
from a2a.types import Task, TaskState, TaskStatus
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from pydantic.alias_generators import to_camel

from agent_runtime.a2a.access import delegation_in
from identity.delegation import acting_for, platform_auth
from platform_core.telemetry import TRACE_HOOKS, tracer
from protocols.chat_client import ChatClient, ChatRequestError, ChatStreamError
from protocols.events import (
    Done,
    Error,
    Metadata,
    Token,
    ToolCall,
    ToolResult,
    is_valid_thread_id,
)

logger = logging.getLogger(__name__)

_ERROR_BODY_LIMIT = 500
_TOOL_CONTENT_LIMIT = 200


def thread_id_for_context(context_id: str) -> str:
    """The chat ``thread_id`` for an A2A context id, so every message of one context lands in one thread.

    That is the id itself when the chat app accepts it, otherwise a stable hash of it.
    """
    if is_valid_thread_id(context_id):
        return context_id
    return "a2a-" + hashlib.sha256(context_id.encode()).hexdigest()[:40]


@dataclass
class _Run:
    """Progress of one ``/chat`` stream, reported as ``working`` updates."""

    updater: TaskUpdater
    progress_interval_s: float
    pending_text: list[str] = field(default_factory=list)
    last_flush: float = field(default_factory=time.monotonic)
    error: Error | None = None
    done: Done | None = None
    run_id: str = ""

    async def progress(self, text: str, **metadata: Any) -> None:
        # Progress details ride on the message: status-update metadata would be merged into the task's.
        message = self.updater.new_agent_message([new_text_part(text)], metadata=metadata)
        await self.updater.update_status(TaskState.TASK_STATE_WORKING, message=message)

    async def token(self, text: str) -> None:
        # One update per token would flood the task history and the client; coalesce by time instead.
        self.pending_text.append(text)
        if time.monotonic() - self.last_flush >= self.progress_interval_s:
            await self.flush_text()

    async def flush_text(self) -> None:
        self.last_flush = time.monotonic()
        if text := "".join(self.pending_text):
            self.pending_text.clear()
            await self.progress(text, event="text")


class ChatAgentExecutor(AgentExecutor):
    """Runs each A2A message as one streamed ``POST {chat_url}`` and reports it as a task.

    ``chat_url`` is the agent's ``/chat`` endpoint (``settings.url("/weather-agent") + "/chat"``).
    ``task_timeout_s`` bounds a whole run; ``progress_interval_s`` is the shortest gap between two
    token-progress updates. With a ``task_store``, a running task re-reads its state every
    ``cancel_check_s`` and stops when another replica canceled it.
    """

    def __init__(
        self,
        chat_url: str,
        *,
        task_timeout_s: float = 300.0,
        progress_interval_s: float = 1.0,
        task_store: TaskStore | VersionedTaskStore | None = None,
        cancel_check_s: float = 1.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.chat_url = chat_url
        self.task_timeout_s = task_timeout_s
        self.progress_interval_s = progress_interval_s
        self.task_store = task_store
        self.cancel_check_s = cancel_check_s
        # The stream may sit silent through a long tool call: the task timeout, not httpx, bounds reads.
        self._http = http_client or httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, connect=10.0, read=None),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=50),
            auth=platform_auth(),  # to the platform's proxy only: the run's delegation
            event_hooks=TRACE_HOOKS,  # the task's /chat run continues the caller's trace
        )
        self._owns_http = http_client is None
        self._agent = ChatClient(chat_url.removesuffix("/chat"), http=self._http)
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._canceled: set[str] = set()

    async def aclose(self) -> None:
        """Stop the runs of this replica (which closes their ``/chat`` streams) and our HTTP client."""
        for run in list(self._runs.values()):
            run.cancel()
        if self._owns_http:
            await self._http.aclose()

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Run the message as one ``/chat`` stream, reporting the task from ``submitted`` to its end.

        The run is a task of its own, so :meth:`cancel` (or a cancel recorded by another replica, seen by
        polling the task store) can stop it and close the stream.
        """
        task_id, context_id = context.task_id, context.context_id
        assert task_id and context_id, "the request handler assigns task and context ids"
        updater = TaskUpdater(event_queue, task_id, context_id)
        if context.current_task is None:
            history = [context.message] if context.message else []
            await event_queue.enqueue_event(
                Task(
                    id=task_id,
                    context_id=context_id,
                    status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED),
                    history=history,
                )
            )
        user_request = context.get_user_input().strip()
        if not user_request:
            await updater.reject(updater.new_agent_message([new_text_part("The message has no text part.")]))
            return

        thread_id = thread_id_for_context(context_id)
        # Status-update metadata lands in the task's: with the final status timestamp, startedAt gives the
        # run's span; threadId ties the task to the agent's conversation.
        await updater.update_status(
            TaskState.TASK_STATE_WORKING,
            updater.new_agent_message([new_text_part("Working on the request.")]),
            metadata={"startedAt": datetime.now(UTC).isoformat(), "threadId": thread_id},
        )
        if task_id in self._canceled:
            return
        # The task's span (a child of the request's): its /chat run, and so the agent's, go below it.
        attributes = {"a2a.task.id": task_id, "a2a.context.id": context_id, "agent.thread_id": thread_id}
        span = tracer().start_span("a2a.task", attributes=attributes)
        # The run's /chat call acts for the task's caller (a delegation; None while auth is off).
        with acting_for(delegation_in(context.call_context)), trace.use_span(span, end_on_exit=False):
            run = asyncio.create_task(self._run(updater, user_request, thread_id), name=f"a2a-chat:{task_id}")
        self._runs[task_id] = run
        watcher = None
        if self.task_store is not None:
            watch = self._watch_for_cancel(task_id, context.call_context or ServerCallContext(), run)
            watcher = asyncio.create_task(watch, name=f"a2a-cancel-watch:{task_id}")
        try:
            await run
        except asyncio.CancelledError:
            # cancel() stopped the run (it reports CANCELED itself), the watcher saw another replica's
            # cancel, or the SDK cancelled execute() (shutdown, or our write met another replica's
            # cancel): in every case the chat stream must close.
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
            span.set_attribute("a2a.task.state", "canceled")
            if task_id not in self._canceled:
                raise
        finally:
            span.end()
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            self._runs.pop(task_id, None)
            self._canceled.discard(task_id)
        if watcher is not None and not watcher.cancelled() and watcher.result():
            # Report it in this replica too: the write meets the stored CANCELED, and the SDK then ends
            # the task here with the stored state (the client waiting on this replica gets it).
            await updater.cancel(updater.new_agent_message([new_text_part("Task canceled.")]))

    async def _watch_for_cancel(
        self, task_id: str, call_context: ServerCallContext, run: asyncio.Task[None]
    ) -> bool:
        """Poll the task's stored state while ``run`` goes on; cancel the run when the state is CANCELED.

        CANCELED there was recorded by another replica. Returns whether it canceled the run.
        """
        assert self.task_store is not None
        while not run.done():
            await asyncio.sleep(self.cancel_check_s)
            try:
                stored = await self.task_store.get(task_id, call_context)
            except Exception as exc:  # a store hiccup must not fail the run; the next check may work
                logger.warning("task %s: reading its state failed: %s", task_id, _describe(exc))
                continue
            task = stored.task if isinstance(stored, StoredTask) else stored
            if task is not None and task.status.state == TaskState.TASK_STATE_CANCELED and not run.done():
                logger.info("task %s canceled through another replica: closing its /chat stream", task_id)
                self._canceled.add(task_id)
                run.cancel()
                return True
        return False

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Close the task's ``/chat`` stream (the agent stops its run) and report ``canceled``.

        The SDK calls this only for a task active in this replica. A cancel for a task not running here
        is recorded in the task store by the request handler; with a shared store the owning replica
        stops its run when it next writes the task.
        """
        task_id, context_id = context.task_id, context.context_id
        assert task_id, "cancel always names a task"
        run = self._runs.get(task_id)
        if run is not None and run.done():
            return  # finished on its own: its terminal state is already reported
        self._canceled.add(task_id)
        if run is not None:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
            logger.info("task %s canceled: closed its /chat stream", task_id)
        else:
            # execute() may still be starting (it checks the flag) or never run: forget the flag later.
            asyncio.get_running_loop().call_later(60, self._canceled.discard, task_id)
        updater = TaskUpdater(event_queue, task_id, context_id or "")
        await updater.cancel(updater.new_agent_message([new_text_part("Task canceled.")]))

    async def _run(self, updater: TaskUpdater, user_request: str, thread_id: str) -> None:
        """Stream one ``/chat`` run into task events; every outcome ends in a terminal state."""
        run = _Run(updater, self.progress_interval_s)
        try:
            async with asyncio.timeout(self.task_timeout_s):
                await self._stream(run, user_request, thread_id)
        except TimeoutError:
            await self._fail(run, f"The agent did not finish within {self.task_timeout_s:g} s.")
            return
        except ChatRequestError as exc:
            detail = exc.message[:_ERROR_BODY_LIMIT]
            await self._fail(
                run, f"Agent at {self.chat_url} answered HTTP {exc.status}: {exc.code}: {detail}"
            )
            return
        except ChatStreamError as exc:
            await self._fail(run, self._stream_failure(exc))
            return

        done = run.done
        assert done is not None, "ChatClient.stream raises when a stream ends without done"
        if run.error is not None:
            await self._fail(run, f"The agent failed: {run.error.message} ({run.error.code})")
        elif not done.answer.strip():
            await self._fail(run, "The agent finished without an answer.")
        else:
            usage = {to_camel(key): value for key, value in done.usage.model_dump().items()}
            await updater.add_artifact(
                [new_text_part(done.answer)], name="answer", metadata={"usage": usage}, last_chunk=True
            )
            message = updater.new_agent_message([new_text_part(done.answer)], metadata={"usage": usage})
            await updater.update_status(TaskState.TASK_STATE_COMPLETED, message, metadata=_run_metadata(run))
            trace.get_current_span().set_attribute("a2a.task.state", "completed")
            # a2a_ prefixed: Serve drops a record's "task_id" (its name for Ray's own task id).
            extra = {
                "a2a_task_id": updater.task_id,
                "a2a_context_id": updater.context_id,
                "thread_id": thread_id,
            }
            logger.info("task %s completed (thread %s)", updater.task_id, thread_id, extra=extra)

    def _stream_failure(self, exc: ChatStreamError) -> str:
        """The task's failure text for an exchange with the agent that broke."""
        cause = exc.__cause__
        if exc.code == "agent_unreachable":
            return f"Agent at {self.chat_url} unreachable: {_describe(cause or exc)}"
        if isinstance(cause, httpx.HTTPError):
            return f"Connection to the agent at {self.chat_url} broke: {_describe(cause)}"
        if exc.code == "stream_interrupted":
            return "The agent's stream ended before its final answer."
        return f"The agent's stream failed ({exc.code}): {exc.message}"

    async def _stream(self, run: _Run, user_request: str, thread_id: str) -> None:
        async with aclosing(self._agent.stream(user_request, thread_id)) as events:
            async for event in events:
                if isinstance(event, Token):
                    await run.token(event.text)
                    continue
                await run.flush_text()
                if isinstance(event, Metadata):
                    run.run_id = event.run_id
                    logger.debug("chat run %s, thread %s", event.run_id, thread_id)
                elif isinstance(event, ToolCall):
                    await run.progress(f"Calling tool {event.name}.", event="tool_call", tool=event.name)
                elif isinstance(event, ToolResult):
                    if event.status == "ok":
                        text = f"Tool {event.name} ok."
                    else:
                        text = f"Tool {event.name} failed: {event.content[:_TOOL_CONTENT_LIMIT]}"
                    await run.progress(text, event="tool_result", tool=event.name, status=event.status)
                elif isinstance(event, Error):
                    run.error = event
                elif isinstance(event, Done):
                    run.done = event
                    return

    @staticmethod
    async def _fail(run: _Run, text: str) -> None:
        updater = run.updater
        logger.warning("task %s failed: %s", updater.task_id, text)
        message = updater.new_agent_message([new_text_part(text)])
        await updater.update_status(TaskState.TASK_STATE_FAILED, message, metadata=_run_metadata(run))
        span = trace.get_current_span()  # the task's (see execute)
        span.set_attribute("a2a.task.state", "failed")
        span.set_status(StatusCode.ERROR, text[:200])


def _run_metadata(run: _Run) -> dict[str, Any] | None:
    """Task metadata of the terminal status: the chat run's id, when the agent reported one."""
    return {"runId": run.run_id} if run.run_id else None


def _describe(exc: BaseException) -> str:
    """``str()`` of many httpx errors is empty; name the type so the message still says something."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
