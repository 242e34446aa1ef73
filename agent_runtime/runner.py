"""The run lifecycle of an agent on LangGraph: its graph, memory, deadline and abort, as ``/chat`` events.

:class:`AgentRunner` implements :class:`agent_runtime.runner_base.BaseAgentRunner`, the seam the apps
use; the mapping of LangGraph chunks to events lives in :mod:`agent_runtime.translation`.

Every transport (the SSE chat app, the A2A app) drives :meth:`AgentRunner.stream`, which guarantees the
contract: ``metadata`` first, ``done`` last, always; failures become one ``error`` event before it.

The agent runs in its own task that feeds a queue; the caller reads the queue under the run's deadline.
That keeps the time limit exact whatever the consumer does between events, and closing the stream (a
client that went away) cancels the run instead of leaving it working for nobody. Tokens that are already
waiting in the queue when the caller comes back for more leave as one ``token`` event
(:func:`take_ready_tokens`): a consumer as fast as the model sees every token alone, a slower one
(a loaded proxy, a client far away) gets fewer, larger frames instead of a growing backlog.
"""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from langchain.agents.middleware.types import InputAgentState
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from agent_runtime.factories import ToolAgent, build_tool_agent, recursion_limit
from agent_runtime.llm_client import LLMClient
from agent_runtime.runner_base import BaseAgentRunner, RunnerHealth
from agent_runtime.spec import AgentRuntimeArgs, AgentSpec
from agent_runtime.state.database import Database
from agent_runtime.state.threads import read_thread
from agent_runtime.tools.sources import ToolSource
from agent_runtime.translation import EventTranslator
from protocols.events import ChatEvent, Done, Error, Metadata, Token
from protocols.threads import ThreadView

logger = logging.getLogger(__name__)

_END = object()
_ABORTED = object()
MAX_COALESCED_CHARS = 2048  # a merged token event stays a small frame


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


def tool_set_key(tools: Sequence[BaseTool]) -> str:
    """Identity of a tool set as the model sees it (names, descriptions, schemas)."""
    specs = sorted((convert_to_openai_tool(tool) for tool in tools), key=lambda s: s["function"]["name"])
    return json.dumps(specs, sort_keys=True, default=str)


def dangling_tool_calls(messages: Sequence[BaseMessage]) -> list[ToolCall]:
    """Tool calls of the thread's last turn that never got a result (a run cut off mid-tools)."""
    answered: set[str] = set()
    for message in reversed(messages):
        if isinstance(message, ToolMessage):
            answered.add(message.tool_call_id)
        elif isinstance(message, AIMessage):
            return [call for call in message.tool_calls if call["id"] not in answered]
        elif isinstance(message, HumanMessage):
            return []
    return []


class AgentRunner(BaseAgentRunner):
    """One agent in one replica on LangGraph: its LLM client, tool source, memory and compiled graph."""

    def __init__(
        self,
        spec: AgentSpec,
        *,
        llm: LLMClient | None = None,
        tools: ToolSource | None = None,
        checkpointer: BaseCheckpointSaver[str] | None = None,
        run_timeout_s: float | None = None,
        max_tool_rounds: int | None = None,
    ) -> None:
        self.spec = spec
        self.llm = llm or LLMClient()
        self.tools = tools if tools is not None else spec.tools
        self.checkpointer: BaseCheckpointSaver[str] = (
            checkpointer if checkpointer is not None else InMemorySaver()
        )
        self.run_timeout_s = run_timeout_s or spec.run_timeout_s
        self.max_tool_rounds = spec.max_tool_rounds if max_tool_rounds is None else max_tool_rounds
        self._agent: ToolAgent | None = None
        self._agent_key: str | None = None

    @classmethod
    def from_args(
        cls, spec: AgentSpec, args: AgentRuntimeArgs, *, checkpointer: BaseCheckpointSaver[str] | None = None
    ) -> "AgentRunner":
        """The runner a deployment builds from its builder args."""
        return cls(
            spec,
            llm=LLMClient(args.llm_base_url, args.llm_model, request_timeout_s=args.llm_request_timeout_s),
            tools=spec.tools.with_overrides(urls=args.mcp_urls, refresh_s=args.tools_refresh_s),
            checkpointer=checkpointer,
            run_timeout_s=args.run_timeout_s,
            max_tool_rounds=args.max_tool_rounds,
        )

    def use_checkpointer(self, checkpointer: BaseCheckpointSaver[str]) -> None:
        """Switch the agent's memory (a chat app opens its database after the runner exists)."""
        self.checkpointer = checkpointer
        self._agent = None

    async def use_database(self, database: Database) -> None:
        """Keep the agent's memory in ``database`` (the graph is rebuilt on its checkpointer)."""
        self.use_checkpointer(await database.checkpointer())

    async def read_thread(self, thread_id: str) -> ThreadView | None:
        """The conversation's latest checkpoint as chat messages (needs neither the model nor tools)."""
        return await read_thread(self.checkpointer, self.thread_key(thread_id), thread_id)

    async def delete_thread(self, thread_id: str) -> bool:
        """Drop every checkpoint of the conversation; ``False`` when it has none."""
        key = self.thread_key(thread_id)
        latest: RunnableConfig = {"configurable": {"thread_id": key, "checkpoint_ns": ""}}
        if await self.checkpointer.aget_tuple(latest) is None:
            return False
        await self.checkpointer.adelete_thread(key)
        return True

    async def stream(
        self, user_request: str, thread_id: str, run_id: str, *, abort: asyncio.Event | None = None
    ) -> AsyncIterator[ChatEvent]:
        """One run as events: ``metadata``, then tokens / tool calls / tool results, ``error``?, ``done``.

        Setting ``abort`` stops the run with a ``thread_claim_lost`` error (its thread lease was lost).
        """
        yield Metadata(thread_id=thread_id, run_id=run_id, agent=self.name)
        started = time.monotonic()
        translator = EventTranslator()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        producer = asyncio.create_task(
            self._produce(user_request, thread_id, translator, queue), name=f"agent-run-{run_id}"
        )
        watcher = asyncio.create_task(_put_when_set(abort, queue, _ABORTED)) if abort is not None else None
        error: Error | None = None
        finished = False
        deadline = started + self.run_timeout_s
        held: object | None = None  # an item take_ready_tokens took out of the queue
        item: Any
        try:
            while True:
                if held is not None:
                    item, held = held, None
                else:
                    try:
                        remaining = max(0.0, deadline - time.monotonic())
                        item = await asyncio.wait_for(queue.get(), timeout=remaining)
                    except TimeoutError:
                        message = f"the run exceeded its {self.run_timeout_s:g}s time limit"
                        error = Error(code="timeout", message=message)
                        break
                if isinstance(item, Token):
                    item, held = take_ready_tokens(item, queue)
                if item is _END:
                    break
                if item is _ABORTED:
                    message = "another run took over the thread (its claim had expired); this run was stopped"
                    error = Error(code="thread_claim_lost", message=message)
                    break
                if isinstance(item, Error):
                    error = item
                    continue
                yield item
            finished = True
        finally:
            if watcher is not None:
                watcher.cancel()
            await _stop(producer)
            if not finished:
                logger.info("run %s thread %s: stopped by the caller (client gone)", run_id, thread_id)
        if error is not None:
            yield error
        logger.info(
            "run %s thread %s: %s in %.1fs",
            run_id,
            thread_id,
            error.code if error else "ok",
            time.monotonic() - started,
        )
        yield Done(thread_id=thread_id, answer=translator.final_answer(), usage=translator.usage)

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

    async def prepare(self) -> None:
        """Compile the graph once ready, so the first request does not pay for it."""
        await self._compiled_agent()

    async def aclose(self) -> None:
        """Release the runner's connections (the app's shutdown)."""
        await asyncio.gather(self.llm.aclose(), self.tools.aclose())

    async def _produce(
        self, user_request: str, thread_id: str, translator: EventTranslator, queue: asyncio.Queue[Any]
    ) -> None:
        try:
            agent = await self._compiled_agent()
            config: RunnableConfig = {
                "configurable": {"thread_id": self.thread_key(thread_id)},
                "recursion_limit": recursion_limit(self.max_tool_rounds),
            }
            repairs = await self._repair_thread(agent, config)
            inputs: InputAgentState = {"messages": [*repairs, HumanMessage(user_request)]}
            async for mode, chunk in agent.astream(inputs, config, stream_mode=["messages", "updates"]):
                for event in translator.translate(mode, chunk):
                    queue.put_nowait(event)
        except Exception as exc:
            event = translator.failed(exc)
            if event.code == "internal":
                logger.exception("agent %s run failed", self.name)
            else:
                logger.warning("agent %s run failed: %s", self.name, event.message)
            queue.put_nowait(event)
        finally:
            queue.put_nowait(_END)

    async def _repair_thread(self, agent: ToolAgent, config: RunnableConfig) -> list[ToolMessage]:
        """Results for tool calls an earlier, cut-off run left open (chat APIs reject such a history)."""
        state = await agent.aget_state(config)
        open_calls = dangling_tool_calls((state.values or {}).get("messages", []))
        return [
            ToolMessage(
                content="Not run: the previous request was stopped before this tool call finished.",
                tool_call_id=call["id"],
                name=call["name"],
                status="error",
            )
            for call in open_calls
        ]

    async def _compiled_agent(self) -> ToolAgent:
        """The compiled graph, rebuilt only when the tool set (or the model) changed."""
        tools = await self.tools.get_tools()
        model = await self.llm.chat_model()
        key = f"{model.model_name}|{tool_set_key(tools)}"
        if self._agent is None or key != self._agent_key:
            self._agent = build_tool_agent(
                model,
                tools,
                system_prompt=self.spec.system_prompt,
                checkpointer=self.checkpointer,
                max_tool_rounds=self.max_tool_rounds,
                name=self.name,
            )
            self._agent_key = key
            logger.info("agent %s built with tools %s", self.name, sorted(t.name for t in tools))
        return self._agent


async def _put_when_set(event: asyncio.Event, queue: asyncio.Queue[Any], item: object) -> None:
    await event.wait()
    queue.put_nowait(item)


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel the run's task and give it a moment to unwind (close its HTTP streams)."""
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=5)
