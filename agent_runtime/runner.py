"""An agent on LangGraph: its graph, memory and thread repair, behind the platform's seam.

:class:`AgentRunner` is a :class:`agent_runtime.run_loop.QueuedAgentRunner`: the run lifecycle of the
``/chat`` contract (``metadata`` first, ``done`` last, the time limit, abort, cancel, token coalescing) is
that class's, shared with every framework; what is LangGraph's is here (the compiled graph, its
checkpointer as the agent's memory, the repair of a thread a cut-off run left with open tool calls). The
mapping of LangGraph chunks to events lives in :mod:`agent_runtime.translation`.
"""

import json
import logging
from collections.abc import Sequence

from langchain.agents.middleware.types import InputAgentState
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from agent_runtime.factories import ToolAgent, build_tool_agent, recursion_limit
from agent_runtime.llm_client import LLMClient
from agent_runtime.run_loop import Emit, QueuedAgentRunner
from agent_runtime.spec import AgentSpec
from agent_runtime.state.database import Database
from agent_runtime.state.threads import read_thread
from agent_runtime.tools.sources import ToolSource
from agent_runtime.translation import EventTranslator
from protocols.events import Error, PriorTurn
from protocols.threads import ThreadView

logger = logging.getLogger(__name__)


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


def _as_message(turn: PriorTurn) -> AIMessage | HumanMessage | SystemMessage:
    """A client's earlier turn as the LangChain message the graph stores."""
    if turn.role == "assistant":
        return AIMessage(turn.content)
    if turn.role == "system":
        return SystemMessage(turn.content)
    return HumanMessage(turn.content)


class AgentRunner(QueuedAgentRunner):
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
        super().__init__(
            spec, llm=llm, tools=tools, run_timeout_s=run_timeout_s, max_tool_rounds=max_tool_rounds
        )
        self.checkpointer: BaseCheckpointSaver[str] = (
            checkpointer if checkpointer is not None else InMemorySaver()
        )
        self._agent: ToolAgent | None = None
        self._agent_key: str | None = None

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

    async def prepare(self) -> None:
        """Compile the graph once ready, so the first request does not pay for it."""
        await self._compiled_agent()

    async def produce(
        self,
        user_request: str,
        thread_id: str,
        ledger: EventTranslator,
        emit: Emit,
        history: Sequence[PriorTurn] = (),
    ) -> None:
        """The graph's run on the thread (repaired first), its chunks translated into events."""
        agent = await self._compiled_agent()
        config: RunnableConfig = {
            "configurable": {"thread_id": self.thread_key(thread_id)},
            "recursion_limit": recursion_limit(self.max_tool_rounds),
        }
        repairs = await self._repair_thread(agent, config)
        earlier = [_as_message(turn) for turn in history]
        inputs: InputAgentState = {"messages": [*repairs, *earlier, HumanMessage(user_request)]}
        async for mode, chunk in agent.astream(inputs, config, stream_mode=["messages", "updates"]):
            for event in ledger.translate(mode, chunk):
                emit(event)

    def error_event(self, exc: Exception, ledger: EventTranslator) -> Error:
        """The contract's code for ``exc`` (tokens of rejected model attempts still count in usage)."""
        return ledger.failed(exc)

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
