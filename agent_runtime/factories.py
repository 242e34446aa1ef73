"""Agent graphs on LangChain's ``create_agent``, with the platform's run policy built in.

- A tool-round limit per run: the model may request tools in at most ``max_tool_rounds`` turns of one
  run; a further request raises :class:`ToolRoundsExceeded` *inside the model node*, so the over-limit
  tool calls are never executed nor reported as started (a clean ``tool_rounds_exceeded`` error).
- Malformed tool calls (arguments that are not a JSON object, a tool name the agent does not have) are
  fed back to the model as error tool results *within the same model call*, up to
  :data:`MAX_INVALID_TOOL_CALL_RETRIES` times; a model that keeps failing ends the run with
  :class:`InvalidToolCall` (an ``invalid_tool_call`` error). Rejected attempts never reach the
  checkpointed transcript nor the tool node, so the ``/chat`` stream shows no ``tool_call`` for them.
- Tool failures (an MCP server gone, a timeout, a bug in a local tool) come back to the model as a
  ``ToolMessage`` with ``status="error"`` instead of ending the run. ``create_agent``'s ``ToolNode``
  only converts argument-validation errors; everything else would propagate.
- The checkpointer is a parameter (conversation memory per ``thread_id``); the default is an
  in-process ``InMemorySaver``.
"""

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse, ToolErrorMiddleware
from langchain.agents.middleware.types import AgentState, InputAgentState, OutputAgentState, ToolCallRequest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.messages.ai import UsageMetadata, add_usage
from langchain_core.tools import BaseTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from platform_core.errors import PlatformError, describe_error

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOOL_ROUNDS = 8
# How often one model call is retried after malformed tool calls (so at most 3 requests per model call):
# a real model usually fixes its call once it reads the error; one that does not is not worth more tokens.
MAX_INVALID_TOOL_CALL_RETRIES = 2
_MAX_ARGS_PREVIEW_CHARS = 300

ToolAgent = CompiledStateGraph[AgentState[Any], None, InputAgentState, OutputAgentState[Any]]
"""The compiled graph :func:`build_tool_agent` returns (``create_agent`` without structured output)."""


class AgentRunError(PlatformError, RuntimeError):
    """A run ended by the platform's run policy (not by a failing dependency)."""


class ToolRoundsExceeded(AgentRunError):
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
        """Call the model, then refuse a reply that asks for one tool round too many."""
        response = handler(request)
        self._check(request, response)
        return response

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse | AIMessage:
        """Async :meth:`wrap_model_call`."""
        response = await handler(request)
        self._check(request, response)
        return response


class InvalidToolCall(AgentRunError):
    """The model's tool calls were still malformed after :data:`MAX_INVALID_TOOL_CALL_RETRIES` retries."""

    def __init__(self, problems: Sequence[str], *, attempts: int, usage: UsageMetadata | None = None) -> None:
        detail = "; ".join(problems)
        super().__init__(f"the model made invalid tool calls {attempts} times in a row: {detail}")
        self.problems = list(problems)
        """What was wrong with each call of the last attempt ("tool 'x': ...")."""
        self.attempts = attempts
        """Model requests made for this one model call."""
        self.usage = usage
        """Tokens the rejected attempts cost (they never reach the transcript, so count them here)."""


def _tool_names(tools: Sequence[BaseTool | dict[str, Any]]) -> set[str]:
    names = set()
    for tool in tools:
        if isinstance(tool, BaseTool):
            names.add(tool.name)
        elif isinstance(tool, dict):
            names.add(str(tool.get("name") or (tool.get("function") or {}).get("name") or ""))
    return names - {""}


def _preview(text: str) -> str:
    return text if len(text) <= _MAX_ARGS_PREVIEW_CHARS else text[:_MAX_ARGS_PREVIEW_CHARS] + "…"


def _json_problem(raw: str | None) -> str:
    """Why ``raw`` is not usable as arguments (the parse error, or what it parsed to)."""
    try:
        parsed = json.loads(raw or "")
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc})"
    return f"a JSON {type(parsed).__name__}, not an object"


def _new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:12]}"


@dataclass
class ToolCallReview:
    """A model message's malformed tool calls, and the conversation that tells the model about them."""

    problems: list[str]
    """One line per malformed call ("unknown tool 'x'"), for the log and :class:`InvalidToolCall`."""
    feedback: list[AIMessage | ToolMessage]
    """The message as sent (malformed arguments as ``{}``) and an error tool result for each call."""


def review_tool_calls(message: AIMessage, available: set[str]) -> ToolCallReview:
    """Find calls whose arguments did not parse or whose tool the agent does not have.

    In the feedback, malformed arguments are sent back as ``{}`` and quoted in the error instead: some
    servers (vLLM) parse the arguments of earlier assistant turns and would reject the retry itself.
    Every call gets an id and an answer (valid calls of the same turn are "not run"), or the chat API
    would reject the conversation.
    """
    problems: list[str] = []
    calls: list[dict[str, Any]] = []
    answers: list[str] = []  # the error result of each of ``calls``
    listed = ", ".join(sorted(available)) or "none"
    for call in message.tool_calls:
        name = call["name"]
        calls.append({"name": name, "args": call["args"], "id": call["id"] or _new_call_id()})
        if name in available:
            answers.append("Not run: another tool call of this turn was invalid. Send the calls again.")
        else:
            problems.append(f"unknown tool {name!r}")
            answers.append(f"Error: there is no tool named {name!r}. Available tools: {listed}.")
    for bad in message.invalid_tool_calls:
        name, raw = bad.get("name") or "", bad.get("args") or ""
        what = _json_problem(raw)
        calls.append({"name": name or "unnamed_tool", "args": {}, "id": bad.get("id") or _new_call_id()})
        problems.append(f"tool {name!r}: arguments are {what}")
        answers.append(
            f"Error: the arguments of this call to {name!r} are {what}: {_preview(raw)}\n"
            "Call the tool again with its arguments as one JSON object that matches its schema."
        )
    if not problems:
        return ToolCallReview(problems=[], feedback=[])
    results = [
        ToolMessage(text, tool_call_id=call["id"], name=call["name"], status="error")
        for call, text in zip(calls, answers, strict=True)
    ]
    return ToolCallReview(
        problems=problems, feedback=[AIMessage(message.content, tool_calls=calls), *results]
    )


class _Attempts:
    """The state of one model call's retries: the request to send next, and the tokens spent so far."""

    def __init__(self, request: ModelRequest, max_retries: int) -> None:
        self.request = request
        self.max_retries = max_retries
        self.count = 0
        self.usage: UsageMetadata | None = None
        self.available = _tool_names(request.tools)

    def review(self, response: ModelResponse) -> ModelResponse | None:
        """The response to keep, or ``None`` after preparing a retry; raises when retries are used up."""
        self.count += 1
        message = next((m for m in reversed(response.result) if isinstance(m, AIMessage)), None)
        if message is None:
            return response
        review = review_tool_calls(message, self.available)
        if not review.problems:
            return self._with_spent_usage(response, message)
        self.usage = add_usage(self.usage, message.usage_metadata)
        if self.count > self.max_retries:
            logger.warning("invalid tool calls after %d attempts, giving up: %s", self.count, review.problems)
            raise InvalidToolCall(review.problems, attempts=self.count, usage=self.usage)
        logger.warning(
            "invalid tool calls (attempt %d), asking the model again: %s", self.count, review.problems
        )
        self.request = self.request.override(messages=[*self.request.messages, *review.feedback])
        return None

    def _with_spent_usage(self, response: ModelResponse, message: AIMessage) -> ModelResponse:
        if self.usage is None:
            return response
        counted = message.model_copy(update={"usage_metadata": add_usage(self.usage, message.usage_metadata)})
        result = [counted if m is message else m for m in response.result]
        return ModelResponse(result=result, structured_response=response.structured_response)


class ToolCallValidationMiddleware(AgentMiddleware):
    """Retries a model call whose tool calls are malformed, telling the model what was wrong.

    The rejected attempts and their error results are added to the *request* of the retry only, never to
    the agent's state: the checkpointed transcript holds just the accepted reply (valid for any chat API,
    and the tool-round count is not spent on retries). Their token usage is added to the accepted reply's.
    """

    def __init__(self, max_retries: int = MAX_INVALID_TOOL_CALL_RETRIES) -> None:
        super().__init__()
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.max_retries = max_retries

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse:
        """Call the model until its tool calls are well-formed or the retries are spent."""
        attempts = _Attempts(request, self.max_retries)
        while (accepted := attempts.review(handler(attempts.request))) is None:
            pass
        return accepted

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        """Async :meth:`wrap_model_call`."""
        attempts = _Attempts(request, self.max_retries)
        while (accepted := attempts.review(await handler(attempts.request))) is None:
            pass
        return accepted


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
) -> ToolAgent:
    """A tool-calling agent with the platform's run policy (see the module docstring).

    ``middleware`` comes outside the platform's own (first in the list = outermost).
    """
    return create_agent(
        model,
        list(tools),
        system_prompt=system_prompt,
        middleware=[
            *middleware,
            ToolRoundLimitMiddleware(max_tool_rounds),
            ToolCallValidationMiddleware(),  # inside the round limit: it judges the accepted reply only
            tool_errors_as_results(),
        ],
        checkpointer=checkpointer if checkpointer is not None else InMemorySaver(),
        name=name,
    )
