"""Microsoft Agent Framework progress as ``/chat`` events, with the platform's run policy on top.

:class:`UpdateTranslator` maps the ``AgentResponseUpdate`` items of ``agent.run(..., stream=True)`` to
``protocols.events`` models and records the answer and token usage in the run's
:class:`agent_runtime.translation.EventTranslator` (the ledger the run's lifecycle reads for ``done``).

MAF streams a model reply as ``text`` and ``function_call`` pieces (a call's name first, its JSON
arguments in pieces after it) and ends it with a ``usage`` item; its function loop then runs the calls
and streams one ``function_result`` per call. So a reply's calls are complete, and not yet run, when
its ``usage`` (or the first result, or a new reply) arrives: that is when they become ``tool_call``
events, and when the platform's policy judges them, as :mod:`agent_runtime.factories` does for LangGraph:

- a reply asking for a tool round beyond ``max_tool_rounds`` raises
  :class:`agent_runtime.factories.ToolRoundsExceeded` there, before its calls run (the runner closes
  MAF's stream, which stops its function loop);
- malformed calls (arguments that are not a JSON object, a tool the agent does not have) are never
  shown: MAF answers them with an error result that the model reads (and that is not shown either);
  a model that makes only malformed calls more than
  :data:`agent_runtime.factories.MAX_INVALID_TOOL_CALL_RETRIES` times in a row raises
  :class:`agent_runtime.factories.InvalidToolCall`.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai

from agent_runtime.factories import MAX_INVALID_TOOL_CALL_RETRIES, InvalidToolCall, ToolRoundsExceeded
from agent_runtime.translation import MAX_TOOL_RESULT_CHARS, EventTranslator, error_event
from protocols.events import ChatEvent, Error, Token, ToolCall, ToolResult


@dataclass
class _PendingCall:
    call_id: str
    name: str = ""
    arguments: str = ""
    parsed: dict[str, Any] | None = None


def _arguments(raw: Any) -> tuple[dict[str, Any] | None, str]:
    """The call's arguments as a JSON object, or ``None`` and why not."""
    if isinstance(raw, dict):
        return raw, ""
    try:
        value = json.loads(raw or "{}")
    except (TypeError, json.JSONDecodeError) as exc:
        return None, f"arguments are not valid JSON ({exc})"
    if not isinstance(value, dict):
        return None, f"arguments are a JSON {type(value).__name__}, not an object"
    return value, ""


def _result_text(content: Any) -> str:
    result = content.result
    if result is None and content.exception is not None:
        text = f"Error: {content.exception}"
    elif isinstance(result, str):
        text = result
    else:
        text = json.dumps(result, default=str, ensure_ascii=False)
    if len(text) > MAX_TOOL_RESULT_CHARS:
        dropped = len(text) - MAX_TOOL_RESULT_CHARS
        text = f"{text[:MAX_TOOL_RESULT_CHARS]}… [{dropped} more characters]"
    return text


@dataclass
class UpdateTranslator:
    """Maps MAF stream updates to chat events (see the module docstring) and fills ``ledger``."""

    ledger: EventTranslator
    tool_names: Callable[[], set[str]]
    """The names of the tools the agent has now (a call to any other is malformed)."""
    max_tool_rounds: int
    rounds: int = 0
    invalid_attempts: int = 0
    _pending: dict[str, _PendingCall] = field(default_factory=dict)
    _hidden: set[str] = field(default_factory=set)  # ids of malformed calls: their results are not shown
    _shown: dict[str, str] = field(default_factory=dict)  # call id -> tool name, of the calls shown
    _reply_id: str | None = None
    _reply_text: str = ""
    _reply_called: bool = False  # the current reply asked for tools (so it is not the answer)
    _reply_open: bool = False  # a reply is streaming (its usage or a tool result ends it)

    def translate(self, update: Any) -> list[ChatEvent]:
        """The events of one ``AgentResponseUpdate`` (often none)."""
        events: list[ChatEvent] = []
        reply_id = getattr(update, "message_id", None)
        for content in update.contents:
            kind = content.type
            if kind == "text" and content.text:
                events.extend(self._text(reply_id, content.text))
            elif kind == "function_call":
                self._call_piece(reply_id, content)
            elif kind == "usage":
                self._usage(content.usage_details or {})
                events.extend(self.end_of_reply())
                self._reply_open = False
            elif kind == "function_result":
                events.extend(self.end_of_reply())
                self._reply_open = False
                if content.call_id not in self._hidden:
                    events.append(self._result(content))
        return events

    def end_of_reply(self) -> list[ChatEvent]:
        """The reply's complete tool calls as events, after the policy checks (also at the stream's end)."""
        if not self._pending:
            if self._reply_open and not self._reply_called:
                self.ledger.answer = self._reply_text  # a reply without tool calls: the answer so far
            return []
        self._reply_called = True
        calls, self._pending = list(self._pending.values()), {}
        available = self.tool_names()
        problems = []
        for call in calls:
            call.parsed, problem = _arguments(call.arguments)
            if call.name not in available:
                problem = f"unknown tool {call.name!r}"
            if problem:
                problems.append(f"tool {call.name!r}: {problem}" if call.name in available else problem)
                self._hidden.add(call.call_id)
        valid = [call for call in calls if call.call_id not in self._hidden]
        if not valid:
            self.invalid_attempts += 1
            if self.invalid_attempts > MAX_INVALID_TOOL_CALL_RETRIES:
                raise InvalidToolCall(problems, attempts=self.invalid_attempts)
            return []
        self.invalid_attempts = 0
        if self.rounds >= self.max_tool_rounds:
            raise ToolRoundsExceeded(self.max_tool_rounds)
        self.rounds += 1
        self._shown.update((call.call_id, call.name) for call in valid)
        return [ToolCall(id=call.call_id, name=call.name, args=call.parsed or {}) for call in valid]

    def _text(self, reply_id: str | None, text: str) -> list[ChatEvent]:
        new = not self._reply_open or reply_id != self._reply_id
        events = self.end_of_reply() if self._pending and new else []
        if new:
            self._new_reply(reply_id)
        self._reply_text += text
        self.ledger.partial += text
        events.append(Token(text=text))
        return events

    def _call_piece(self, reply_id: str | None, content: Any) -> None:
        if not self._reply_open or reply_id != self._reply_id:
            self._new_reply(reply_id)
        call = self._pending.setdefault(content.call_id or "", _PendingCall(call_id=content.call_id or ""))
        call.name = call.name or content.name or ""
        if isinstance(content.arguments, dict):
            call.arguments = json.dumps(content.arguments)
        else:
            call.arguments += content.arguments or ""

    def _new_reply(self, reply_id: str | None) -> None:
        self._reply_id, self._reply_text, self._reply_called, self._reply_open = reply_id, "", False, True
        self.ledger.partial = ""

    def _usage(self, details: Any) -> None:
        # MAF's function loop reports usage as a running total of the run (each item replaces the last)
        self.ledger.usage.prompt_tokens = int(details.get("input_token_count") or 0)
        self.ledger.usage.completion_tokens = int(details.get("output_token_count") or 0)

    def _result(self, content: Any) -> ToolResult:
        failed = content.exception is not None
        return ToolResult(
            id=content.call_id or "",
            name=self._shown.get(content.call_id or "", ""),
            status="error" if failed else "ok",
            content=_result_text(content),
        )


def maf_error_event(exc: BaseException) -> Error:
    """The ``error`` event of a failed MAF run: MAF wraps the OpenAI SDK's errors, whose kind decides."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, openai.OpenAIError):
            return error_event(cause)
        cause = cause.__cause__ or cause.__context__
    return error_event(exc)
