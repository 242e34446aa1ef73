"""Agent graphs on LangChain's ``create_agent``, with the platform's run policy built in.

- A tool-round limit per run: the model may request tools in at most ``max_tool_rounds`` turns of one
  run; a further request raises :class:`ToolRoundsExceeded` *inside the model node*, so the over-limit
  tool calls are never executed nor reported as started (a clean ``tool_rounds_exceeded`` error).
- Tool failures (an MCP server gone, a timeout, a bug in a local tool) come back to the model as a
  ``ToolMessage`` with ``status="error"`` instead of ending the run. ``create_agent``'s ``ToolNode``
  only converts argument-validation errors; everything else would propagate.
- The checkpointer is a parameter (conversation memory per ``thread_id``); the default is an
  in-process ``InMemorySaver``.
"""

import logging
from collections.abc import Awaitable, Callable, Sequence

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse, ToolErrorMiddleware
from langchain.agents.middleware.types import ToolCallRequest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import BaseTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from platform_core.errors import describe_error

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOOL_ROUNDS = 8


class ToolRoundsExceeded(RuntimeError):
    """The model asked for tools again after ``max_tool_rounds`` rounds in one run."""

    def __init__(self, max_rounds: int) -> None:
        super().__init__(f"the model requested tools after {max_rounds} tool rounds in one run")
        self.max_rounds = max_rounds


def tool_rounds_this_run(messages: Sequence[BaseMessage]) -> int:
    """Model turns with tool calls since the run's user message (the last ``HumanMessage``)."""
    rounds = 0
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            break
        if isinstance(message, AIMessage) and message.tool_calls:
            rounds += 1
    return rounds


def recursion_limit(max_tool_rounds: int) -> int:
    """A LangGraph step budget that the tool-round limit, not the recursion limit, always hits first."""
    return 4 * (max_tool_rounds + 2) + 10


class ToolRoundLimitMiddleware(AgentMiddleware):
    """Fails a run whose model requests a tool round beyond ``max_rounds``."""

    def __init__(self, max_rounds: int) -> None:
        super().__init__()
        if max_rounds < 0:
            raise ValueError("max_rounds must be >= 0")
        self.max_rounds = max_rounds

    def _check(self, request: ModelRequest, response: ModelResponse | AIMessage) -> None:
        result = response.result if isinstance(response, ModelResponse) else [response]
        wants_tools = any(isinstance(m, AIMessage) and m.tool_calls for m in result)
        if wants_tools and tool_rounds_this_run(request.messages) >= self.max_rounds:
            raise ToolRoundsExceeded(self.max_rounds)

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse | AIMessage:
        response = handler(request)
        self._check(request, response)
        return response

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse | AIMessage:
        response = await handler(request)
        self._check(request, response)
        return response


def _tool_error_content(exc: Exception, request: ToolCallRequest) -> str:
    name = request.tool_call["name"]
    logger.warning("tool %r failed: %s", name, describe_error(exc, limit=2000))
    return f"Tool {name!r} failed: {describe_error(exc)}"


def tool_errors_as_results() -> ToolErrorMiddleware:
    """Middleware that turns any exception of a tool call into an error ``ToolMessage``."""
    return ToolErrorMiddleware(on_error=_tool_error_content)


def build_tool_agent(
    model: BaseChatModel,
    tools: Sequence[BaseTool],
    *,
    system_prompt: str,
    checkpointer: Checkpointer | None = None,
    max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
    middleware: Sequence[AgentMiddleware] = (),
    name: str | None = None,
) -> CompiledStateGraph:
    """A tool-calling agent with the platform's run policy (see the module docstring).

    ``middleware`` comes outside the platform's own (first in the list = outermost).
    """
    return create_agent(
        model,
        list(tools),
        system_prompt=system_prompt,
        middleware=[*middleware, ToolRoundLimitMiddleware(max_tool_rounds), tool_errors_as_results()],
        checkpointer=checkpointer if checkpointer is not None else InMemorySaver(),
        name=name,
    )
