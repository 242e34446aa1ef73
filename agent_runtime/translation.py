"""LangGraph progress as ``/chat`` events: the translation half of a run.

:class:`EventTranslator` maps the chunks of ``astream(stream_mode=["messages", "updates"])`` to
``protocols.events`` models; :func:`error_event` maps a failed run's exception to its ``error`` event.
:class:`agent_runtime.runner.AgentRunner` owns the run's lifecycle (deadline, abort, memory) and uses both.
"""

from dataclasses import dataclass, field
from typing import Any

import openai
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langgraph.errors import GraphRecursionError

from agent_runtime.factories import InvalidToolCall, ToolRoundsExceeded
from agent_runtime.llm_client import LLMUnavailable
from platform_core.errors import describe_error
from protocols.events import ChatEvent, Error, Token, ToolCall, ToolResult, Usage

MAX_TOOL_RESULT_CHARS = 16_000
_LLM_UNAVAILABLE = (
    LLMUnavailable,
    openai.APIConnectionError,  # includes APITimeoutError
    openai.InternalServerError,
    openai.RateLimitError,
)


def error_event(exc: BaseException) -> Error:
    """The ``error`` event for a failed run.

    Codes: ``tool_rounds_exceeded``, ``invalid_tool_call`` (the model's tool calls stayed malformed after
    its retries), ``budget_exceeded`` (the caller's key ran out of LLM tokens during the run),
    ``llm_unavailable`` (unreachable, 5xx, rate-limited), ``llm_error`` (the LLM rejected the request),
    ``internal``; the runner itself adds ``timeout`` and ``thread_claim_lost``.
    """
    if isinstance(exc, ToolRoundsExceeded | GraphRecursionError):
        return Error(code="tool_rounds_exceeded", message=str(exc))
    if isinstance(exc, InvalidToolCall):
        return Error(code="invalid_tool_call", message=str(exc))
    if isinstance(exc, openai.APIStatusError) and exc.code == "budget_exceeded":
        # /llm refused a call: the key's token budget ran out during the run (identity.limits).
        return Error(code="budget_exceeded", message="the token budget of this API key is spent for now")
    detail = describe_error(exc)
    if isinstance(exc, _LLM_UNAVAILABLE):
        return Error(code="llm_unavailable", message=f"the language model is unavailable: {detail}")
    if isinstance(exc, openai.APIStatusError):
        return Error(code="llm_error", message=f"the language model rejected the request: {detail}")
    return Error(code="internal", message=f"the agent failed: {detail}")


def _message_text(message: BaseMessage) -> str:
    return message.text


@dataclass
class EventTranslator:
    """Maps LangGraph ``astream(stream_mode=["messages", "updates"])`` chunks to chat events.

    Tokens come from the ``messages`` stream (chunks of the model node); tool calls from the model
    node's completed update (arguments complete, and never for calls the round limit refused nor for
    malformed calls the model was asked to redo); tool results from the tools node's updates, one per
    finished call. Text the model streamed in a rejected attempt stays in the token stream (a token
    cannot be recalled), but ``done.answer`` is the accepted reply's text only.
    """

    answer: str | None = None
    partial: str = ""
    usage: Usage = field(default_factory=Usage)
    _streamed_ids: set[str] = field(default_factory=set)
    _current_id: str | None = None

    def translate(self, mode: str, chunk: Any) -> list[ChatEvent]:
        """The events of one ``(mode, chunk)`` pair of the stream (often none)."""
        if mode == "messages":
            message, meta = chunk
            if meta.get("langgraph_node") == "model" and isinstance(message, AIMessageChunk):
                return self._token(message)
            return []
        events: list[ChatEvent] = []
        for node, update in (chunk or {}).items():
            for message in _update_messages(update):
                if node == "model" and isinstance(message, AIMessage):
                    events.extend(self._model_message(message))
                elif node == "tools" and isinstance(message, ToolMessage):
                    events.append(_tool_result(message))
        return events

    def final_answer(self) -> str:
        """``done.answer``: the accepted reply's text, else what the model streamed before the run ended."""
        return self.answer if self.answer is not None else self.partial

    def failed(self, exc: BaseException) -> Error:
        """The run's ``error`` event; tokens spent by rejected model attempts still count in ``usage``."""
        if isinstance(exc, InvalidToolCall) and exc.usage:
            self.usage.prompt_tokens += exc.usage.get("input_tokens", 0)
            self.usage.completion_tokens += exc.usage.get("output_tokens", 0)
        return error_event(exc)

    def _token(self, chunk: AIMessageChunk) -> list[ChatEvent]:
        if chunk.id != self._current_id:
            self._current_id, self.partial = chunk.id, ""
        text = _message_text(chunk)
        if not text:
            return []
        if chunk.id:
            self._streamed_ids.add(chunk.id)
        self.partial += text
        return [Token(text=text)]

    def _model_message(self, message: AIMessage) -> list[ChatEvent]:
        events: list[ChatEvent] = []
        text = _message_text(message)
        if text and message.id not in self._streamed_ids:
            events.append(Token(text=text))  # a model that did not stream still shows its text
        if message.usage_metadata:
            self.usage.prompt_tokens += message.usage_metadata.get("input_tokens", 0)
            self.usage.completion_tokens += message.usage_metadata.get("output_tokens", 0)
        # Malformed calls never get here: the graph's ToolCallValidationMiddleware retried or failed them.
        for call in message.tool_calls:
            events.append(ToolCall(id=call["id"] or "", name=call["name"], args=call["args"]))
        if not message.tool_calls:
            self.answer = text
        return events


def _update_messages(update: Any) -> list[BaseMessage]:
    if isinstance(update, dict):
        messages = update.get("messages") or []
        return list(messages) if isinstance(messages, list) else [messages]
    if isinstance(update, list):
        return [m for item in update for m in _update_messages(item)]
    return []


def _tool_result(message: ToolMessage) -> ToolResult:
    content = _message_text(message)
    if len(content) > MAX_TOOL_RESULT_CHARS:
        dropped = len(content) - MAX_TOOL_RESULT_CHARS
        content = f"{content[:MAX_TOOL_RESULT_CHARS]}… [{dropped} more characters]"
    return ToolResult(
        id=message.tool_call_id,
        name=message.name or "",
        status="error" if message.status == "error" else "ok",
        content=content,
    )
