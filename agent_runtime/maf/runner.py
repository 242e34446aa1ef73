"""An agent on Microsoft Agent Framework (MAF) behind the platform's seam: :class:`MAFAgentRunner`.

The chat app (and through it the A2A app) drives it as it drives the LangGraph runner, and the
``/chat`` contract is the same: the run's lifecycle (``metadata`` first, ``done`` last, the time limit,
abort on a lost thread lease, cancel when the client goes away, token coalescing) is
:class:`agent_runtime.run_loop.QueuedAgentRunner`'s, shared with the LangGraph runner; only what runs
inside it is MAF's:

- the model: MAF's ``OpenAIChatCompletionClient`` on the platform's ``/llm`` (the same endpoint, key,
  timeouts and model discovery as LangGraph agents: :class:`agent_runtime.llm_client.LLMClient`);
- the tools: MAF's own ``MCPStreamableHTTPTool``, one per server of the agent's
  :class:`agent_runtime.tools.MCPServers` (the same declaration and ``mcp_urls`` overrides). The
  platform's source still discovers the servers' tools, on its refresh schedule with backoff, for
  ``/health``; when the tool set it sees changes, the MAF tools reload theirs (runtime tool refresh);
- memory: MAF's ``AgentSession`` (history in its state), serialized with ``to_dict()`` into the platform
  database after every finished run (:mod:`agent_runtime.state.sessions`), in this process without one.
  A run cut off (time limit, client gone) stores nothing, so the thread stays as before that request.

The progress of a run becomes events in :mod:`agent_runtime.maf.translation`, which also applies the
platform's tool-round limit and malformed-call policy. MAF is imported only when a MAF agent is built
(an app of LangGraph agents never loads it).
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from agent_runtime.maf.threads import thread_view
from agent_runtime.maf.translation import UpdateTranslator, maf_error_event
from agent_runtime.run_loop import Emit, QueuedAgentRunner
from agent_runtime.runner import tool_set_key
from agent_runtime.spec import AgentSpec
from agent_runtime.state.database import Database
from agent_runtime.state.sessions import DatabaseSessionDocuments, LocalSessionDocuments, SessionDocuments
from agent_runtime.tools.mcp import MCPServers
from agent_runtime.tools.sources import ToolSource
from agent_runtime.translation import EventTranslator
from identity.delegation import platform_auth
from platform_core.errors import ConfigurationError, describe_error
from protocols.events import Error, PriorTurn
from protocols.threads import ThreadView

if TYPE_CHECKING:
    from agent_framework import Agent, AgentSession, MCPStreamableHTTPTool

    from agent_runtime.llm_client import LLMClient

logger = logging.getLogger(__name__)


class MAFAgentRunner(QueuedAgentRunner):
    """One MAF agent in one replica: its chat client, MCP tools, sessions and ``Agent``.

    Built like the LangGraph runner (``MAFAgentRunner.from_args(spec, args)``, which an
    :class:`agent_runtime.AgentSpec` names as its ``runner``); its tools must be an
    :class:`agent_runtime.tools.MCPServers`.
    """

    def __init__(
        self,
        spec: AgentSpec,
        *,
        llm: "LLMClient | None" = None,
        tools: ToolSource | None = None,
        run_timeout_s: float | None = None,
        max_tool_rounds: int | None = None,
        sessions: SessionDocuments | None = None,
    ) -> None:
        """As :class:`QueuedAgentRunner`; ``sessions``: the memory (this process's until ``use_database``)."""
        super().__init__(
            spec, llm=llm, tools=tools, run_timeout_s=run_timeout_s, max_tool_rounds=max_tool_rounds
        )
        if not isinstance(self.tools, MCPServers):
            raise ConfigurationError(
                f"agent {spec.name!r}: a MAF agent takes MCPServers tools, not {self.tools.label}"
            )
        self.mcp: MCPServers = self.tools
        self.sessions: SessionDocuments = sessions if sessions is not None else LocalSessionDocuments()
        self._maf: Agent | None = None
        self._maf_key: str | None = None
        self._mcp_tools: dict[str, MCPStreamableHTTPTool] = {}
        self._building: asyncio.Lock | None = None

    async def use_database(self, database: Database) -> None:
        """Keep the agent's sessions in ``database`` (its tables, ``agent_sessions`` too, are created now)."""
        await database.open()
        documents = DatabaseSessionDocuments(database)
        await documents.open()
        self.sessions = documents

    async def read_thread(self, thread_id: str) -> ThreadView | None:
        """The stored session's history as chat messages (needs neither the model nor the tools)."""
        stored = await self.sessions.get(self.thread_key(thread_id))
        return None if stored is None else thread_view(thread_id, stored)

    async def delete_thread(self, thread_id: str) -> bool:
        """Forget the stored session; ``False`` when there was none."""
        return await self.sessions.delete(self.thread_key(thread_id))

    async def prepare(self) -> None:
        """Connect the MCP tools and build the agent once ready, so the first request does not wait."""
        await self._maf_agent()

    async def aclose(self) -> None:
        """Close the MAF MCP tools, then the LLM client and the tool source."""
        tools, self._mcp_tools = list(self._mcp_tools.values()), {}
        await asyncio.gather(*(tool.close() for tool in tools), return_exceptions=True)
        await super().aclose()

    async def produce(
        self,
        user_request: str,
        thread_id: str,
        ledger: EventTranslator,
        emit: Emit,
        history: Sequence[PriorTurn] = (),
    ) -> None:
        """The MAF agent's run on the thread's session; the session is stored once the run finished."""
        from agent_framework import Message

        agent = await self._maf_agent()
        key = self.thread_key(thread_id)
        session = await self._session(agent, key)
        updates = UpdateTranslator(ledger, tool_names=self._tool_names, max_tool_rounds=self.max_tool_rounds)
        messages = [Message(turn.role, [turn.content]) for turn in history] + [
            Message("user", [user_request])
        ]
        async with agent.run(messages, stream=True, session=session) as stream:
            async for update in stream:
                for event in updates.translate(update):
                    emit(event)
            for event in updates.end_of_reply():
                emit(event)
            await stream.get_final_response()  # the history provider stores the turn in the session
        await self.sessions.put(key, session.to_dict())

    def error_event(self, exc: Exception, ledger: EventTranslator) -> Error:
        """The contract's code for ``exc`` (MAF's exceptions mapped in :func:`maf_error_event`)."""
        return maf_error_event(exc)

    def _tool_names(self) -> set[str]:
        return {function.name for tool in self._mcp_tools.values() for function in tool.functions}

    async def _session(self, agent: "Agent", key: str) -> "AgentSession":
        from agent_framework import AgentSession

        stored = await self.sessions.get(key)
        if stored is None:
            return agent.create_session(session_id=key)
        return AgentSession.from_dict(stored.document)

    async def _maf_agent(self) -> "Agent":
        """The MAF agent, rebuilt (MCP tools reloaded) when the tool set or the model changed."""
        tools = await self.tools.get_tools()  # the platform's discovery: refresh schedule, backoff, /health
        model = await self.llm.model_id()
        key = f"{model}|{tool_set_key(tools)}"
        if self._building is None:
            self._building = asyncio.Lock()
        async with self._building:
            if self._maf is None or key != self._maf_key:
                self._maf, connected = await self._build(model)
                self._maf_key = key if connected else None  # a server that failed: try again next run
        return self._maf

    async def _build(self, model: str) -> tuple["Agent", bool]:
        from agent_framework import Agent
        from agent_framework.openai import OpenAIChatCompletionClient

        connected = await self._connect_tools()
        client = OpenAIChatCompletionClient(
            model=model,
            async_client=self.llm.openai_client(),
            # the platform's round limit (translation) stops the run first; tool errors reach the model
            function_invocation_configuration={
                "max_iterations": self.max_tool_rounds + 2,
                "include_detailed_errors": True,
            },
        )
        agent = Agent(
            client=client,
            name=self.name,
            description=self.spec.description or None,
            instructions=self.spec.system_prompt,
            tools=list(self._mcp_tools.values()),
        )
        logger.info(
            "MAF agent %s built on model %s with tools %s", self.name, model, sorted(self._tool_names())
        )
        return agent, connected

    async def _connect_tools(self) -> bool:
        """One connected MCP tool per server: new or moved servers connect, the others reload their tools.

        Returns whether every server answered.
        """
        from agent_framework import MCPStreamableHTTPTool

        connected = True
        for name, status in self.mcp.status().items():
            tool = self._mcp_tools.get(name)
            url = status.url or ""  # resolved by the source
            try:
                if tool is not None and tool.url == url:
                    await tool.load_tools()
                    continue
                if tool is not None:
                    del self._mcp_tools[name]
                    await tool.close()
                tool = MCPStreamableHTTPTool(
                    name=name,
                    url=url,
                    load_prompts=False,
                    tool_result_content="content_first",  # the text, as LangGraph agents get it
                    request_timeout=int(self.mcp.call_timeout_s),
                    # As every MCP session here: the platform's own token, never a user's (MAF sends it
                    # only to the server's own origin).
                    header_provider=_platform_headers(url),
                )
                await tool.connect()
                self._mcp_tools[name] = tool
            except Exception as exc:  # one server down must not hide the others' tools
                logger.warning(
                    "MAF agent %s: MCP server %r at %s: %s", self.name, name, url, describe_error(exc)
                )
                connected = False
        return connected


def _platform_headers(url: str) -> Callable[[dict[str, Any]], dict[str, str]]:
    """MAF's ``header_provider`` for the MCP server at ``url``: the platform's token when auth is on."""
    auth = platform_auth(delegate=False)

    def headers(_: dict[str, Any]) -> dict[str, str]:
        token = auth.token_for(url)
        return {"Authorization": f"Bearer {token}"} if token else {}

    return headers
