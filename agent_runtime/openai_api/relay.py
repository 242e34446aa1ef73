"""What the ``/openai`` app writes: an agent's ``/chat`` events as OpenAI chat completions.

Tokens become the answer's ``content``. The agent's tool steps are not dropped; they travel in two
places that standard clients ignore safely:

- ``reasoning_content`` (of a chunk's ``delta``, or of the answer's ``message``): one readable line per
  step, ``→ geocode(place='Paris')`` and ``← geocode: ok``. Chat UIs that show a model's reasoning
  (Open WebUI, LibreChat) show the agent's steps there;
- ``agent_event`` on a chunk (``agent_events`` on a whole answer): the ``tool_call`` / ``tool_result``
  events of the ``/chat`` contract as they are, for programs.

``usage`` is the agent's whole run: every model call of every tool round (and, with delegation, what the
agents it called spent). A run that fails after its stream began ends with an OpenAI error frame
(``data: {"error": {...}}``), which the official clients raise as an ``APIError``; before that, with an
HTTP error (:func:`run_error`).
"""

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from platform_core.openai_errors import OpenAIError
from protocols.chat_client import ChatStreamError
from protocols.events import ChatEvent, Done, Error, Metadata, Token, ToolCall, ToolResult

SSE_DONE = b"data: [DONE]\n\n"

# The HTTP status of a run that failed before any answer: what the failure means to an OpenAI client.
_STATUS_BY_RUN_ERROR = {
    "budget_exceeded": 429,
    "timeout": 504,
    "llm_unavailable": 503,
    "llm_error": 502,
}


def step_line(event: ToolCall | ToolResult) -> str:
    """A tool step as one readable line of ``reasoning_content``."""
    if isinstance(event, ToolCall):
        args = ", ".join(f"{name}={value!r}" for name, value in event.args.items())
        return f"→ {event.name}({args})\n"
    return f"← {event.name}: {event.status}\n"


def run_error(error: Error) -> OpenAIError:
    """The OpenAI error of a run that ended with ``error`` (its ``/chat`` code is the error's code)."""
    status = _STATUS_BY_RUN_ERROR.get(error.code, 500)
    return OpenAIError(
        status, f"The agent's run failed: {error.message}", type="agent_error", code=error.code
    )


def sse(payload: dict[str, Any]) -> bytes:
    """One ``data:`` frame of an OpenAI stream."""
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


class CompletionRelay:
    """One answer of ``model`` (an agent), built from the run's events."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.thread_id: str | None = None
        self.steps: list[dict[str, Any]] = []
        self.error: Error | None = None
        self.done: Done | None = None
        self._content: list[str] = []
        self._reasoning: list[str] = []

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            **extra,
        }

    def first_chunk(self) -> dict[str, Any]:
        """The opening chunk: the assistant's role, no content yet."""
        return self._chunk({"role": "assistant", "content": ""})

    def take(self, event: ChatEvent) -> list[dict[str, Any]]:
        """Record ``event``; its chunks in a stream (none for ``metadata``, ``error`` and ``done``)."""
        if isinstance(event, Metadata):
            self.thread_id = event.thread_id
        elif isinstance(event, Token):
            self._content.append(event.text)
            return [self._chunk({"content": event.text})]
        elif isinstance(event, (ToolCall, ToolResult)):
            step = event.model_dump(mode="json")
            line = step_line(event)
            self.steps.append(step)
            self._reasoning.append(line)
            return [self._chunk({"reasoning_content": line}, agent_event=step)]
        elif isinstance(event, Error):
            self.error = event
        elif isinstance(event, Done):
            self.done = event
        return []

    async def chunks(self, events: AsyncIterator[ChatEvent]) -> AsyncIterator[dict[str, Any]]:
        """:meth:`take` every event of ``events``, yielding its chunks.

        A stream that breaks on the way (:class:`~protocols.chat_client.ChatStreamError`) is recorded as
        the run's error.
        """
        try:
            async for event in events:
                for chunk in self.take(event):
                    yield chunk
        except ChatStreamError as exc:
            self.take(Error(code=exc.code, message=exc.message))

    def usage(self) -> dict[str, int]:
        """The run's token usage in the OpenAI shape (zeros until ``done``)."""
        usage = self.done.usage if self.done is not None else None
        prompt = usage.prompt_tokens if usage else 0
        completion = usage.completion_tokens if usage else 0
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def closing_frames(self, *, include_usage: bool) -> list[bytes]:
        """The stream's end: the finish chunk (and the usage chunk), or the error frame of a failed run."""
        if self.error is not None:
            return [run_error(self.error).sse_frame(), SSE_DONE]
        frames = [sse(self._chunk({}, "stop"))]
        if include_usage:
            frames.append(sse({**self._chunk({}), "choices": [], "usage": self.usage()}))
        return [*frames, SSE_DONE]

    def completion(self) -> dict[str, Any]:
        """The whole answer (``stream: false``); raises the run's :class:`OpenAIError` if it failed."""
        if self.error is not None:
            raise run_error(self.error)
        answer = self.done.answer if self.done is not None and self.done.answer else "".join(self._content)
        message: dict[str, Any] = {"role": "assistant", "content": answer, "refusal": None}
        if self._reasoning:
            message["reasoning_content"] = "".join(self._reasoning)
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
            "usage": self.usage(),
            "agent_events": self.steps,
            "thread_id": self.thread_id,
        }
