"""The `/chat` Server-Sent Events contract, shared by the chat deployment, the UI and tests.

Every frame is ``event: <type>`` followed by ``data: <one JSON object>``. ``metadata`` comes first and
``done`` comes last, always, also after an ``error``.
"""

import json
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

# The thread ids ``POST /chat`` accepts: what a client (or the A2A adapter mapping its context ids) may
# send as ``thread_id``. Conservative so they are safe as checkpointer keys and in logs and headers.
# The pattern is for JSON schema and pydantic (where ``$`` is the end of the text); Python code checks
# with :func:`is_valid_thread_id`, since ``re.match(...$)`` also accepts a trailing newline.
THREAD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_THREAD_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def is_valid_thread_id(value: str) -> bool:
    """Whether ``value`` is a thread id ``POST /chat`` accepts (the whole string, no trailing newline)."""
    return _THREAD_ID_RE.fullmatch(value) is not None


class Metadata(BaseModel):
    type: Literal["metadata"] = "metadata"
    thread_id: str
    run_id: str
    agent: str


class Token(BaseModel):
    type: Literal["token"] = "token"
    text: str


class ToolCall(BaseModel):
    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class ToolResult(BaseModel):
    type: Literal["tool_result"] = "tool_result"
    id: str
    name: str
    status: Literal["ok", "error"]
    content: str


class Error(BaseModel):
    type: Literal["error"] = "error"
    code: str
    message: str


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Done(BaseModel):
    type: Literal["done"] = "done"
    thread_id: str
    answer: str
    usage: Usage = Field(default_factory=Usage)


ChatEvent = Metadata | Token | ToolCall | ToolResult | Error | Done

_EVENT_TYPES: dict[str, type[BaseModel]] = {
    "metadata": Metadata,
    "token": Token,
    "tool_call": ToolCall,
    "tool_result": ToolResult,
    "error": Error,
    "done": Done,
}


def encode_sse(event: ChatEvent) -> str:
    """One SSE frame; the ``type`` discriminator travels as the SSE event name, not in the data."""
    data = event.model_dump(exclude={"type"})
    return f"event: {event.type}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def decode_event(event_type: str, data: str) -> ChatEvent:
    """Parse one frame's event name and data back into its typed event."""
    try:
        model = _EVENT_TYPES[event_type]
    except KeyError:
        raise ValueError(f"unknown chat event type {event_type!r}") from None
    return model.model_validate({**json.loads(data), "type": event_type})  # type: ignore[return-value]


class SSEParser:
    """Incremental parser: feed it body lines, it returns an event whenever a frame completes."""

    def __init__(self) -> None:
        self._event_type, self._data = "message", ""

    def feed(self, line: str) -> ChatEvent | None:
        line = line.rstrip("\r\n")
        if line.startswith("event:"):
            self._event_type = line[len("event:") :].strip()
        elif line.startswith("data:"):
            self._data += line[len("data:") :].strip()
        elif not line:
            return self.flush()
        return None

    def flush(self) -> ChatEvent | None:
        """End the current frame (blank line or end of body)."""
        event = decode_event(self._event_type, self._data) if self._data else None
        self._event_type, self._data = "message", ""
        return event


def parse_sse_lines(lines: Iterable[str]) -> list[ChatEvent]:
    """Parse a complete SSE body (as lines) into events; for tests and simple clients."""
    parser = SSEParser()
    events = [event for line in lines if (event := parser.feed(line)) is not None]
    if (last := parser.flush()) is not None:
        events.append(last)
    return events


async def aiter_sse_events(lines: AsyncIterator[str]) -> AsyncIterator[ChatEvent]:
    """Parse a streaming SSE body (e.g. ``httpx.Response.aiter_lines()``) into events as they arrive."""
    parser = SSEParser()
    async for line in lines:
        if (event := parser.feed(line)) is not None:
            yield event
    if (last := parser.flush()) is not None:
        yield last
