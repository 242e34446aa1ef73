"""The `/chat` Server-Sent Events contract: the one typed source of truth for agents, clients and docs.

Every frame is ``event: <type>`` followed by ``data: <one JSON object>`` and a blank line. ``metadata``
comes first and ``done`` comes last, always, also after an ``error``. The event models below are that
contract: the chat app encodes them, :mod:`protocols.chat_client` (and the UI, the A2A adapter, the bench)
decodes them, and ``python -m protocols.reference`` writes the README's event table from their field
descriptions. :data:`ErrorCode` lists every ``error`` code a stream can carry; :data:`HTTPErrorCode` the
codes of the JSON error bodies a ``/chat`` or thread request gets instead of a stream.
"""

import json
import re
from collections.abc import AsyncIterator, Iterable
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field, StringConstraints, TypeAdapter

# The thread ids ``POST /chat`` accepts: what a client (or the A2A adapter mapping its context ids) may
# send as ``thread_id``. Conservative so they are safe as checkpointer keys and in logs and headers.
# The pattern is for JSON schema and pydantic (where ``$`` is the end of the text); Python code checks
# with :func:`is_valid_thread_id`, since ``re.match(...$)`` also accepts a trailing newline.
THREAD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_THREAD_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def is_valid_thread_id(value: str) -> bool:
    """Whether ``value`` is a thread id ``POST /chat`` accepts (the whole string, no trailing newline)."""
    return _THREAD_ID_RE.fullmatch(value) is not None


# --- error codes --------------------------------------------------------------------------------------

ErrorCode = Literal[
    # sent by the agent, inside the stream
    "timeout",
    "tool_rounds_exceeded",
    "invalid_tool_call",
    "llm_unavailable",
    "llm_error",
    "thread_claim_lost",
    "budget_exceeded",
    "internal",
    # raised on the client side (protocols.chat_client, the UI) when the exchange itself fails
    "agent_unreachable",
    "stream_interrupted",
    "bad_event",
]
"""The code of an ``error`` event: what went wrong, in a word a client can branch on."""

ERROR_CODES: dict[ErrorCode, tuple[Literal["agent", "client"], str]] = {
    "timeout": (
        "agent",
        "the run exceeded its time limit (`run_timeout_s`); a client uses it too when the agent sent "
        "nothing for its read timeout",
    ),
    "tool_rounds_exceeded": ("agent", "the model kept calling tools past `max_tool_rounds`"),
    "invalid_tool_call": (
        "agent",
        "the model's tool calls stayed malformed (arguments not a JSON object, a tool the agent does not "
        "have) after its retries",
    ),
    "llm_unavailable": ("agent", "the language model is unreachable, failing (5xx) or rate-limited"),
    "llm_error": ("agent", "the language model rejected the request (4xx)"),
    "thread_claim_lost": (
        "agent",
        "another run took the thread over (this run's claim had expired) and this run was stopped",
    ),
    "budget_exceeded": (
        "agent",
        "the API key's LLM token budget ran out during the run (tokens of every agent it delegated to "
        "count); `done` follows with the partial answer",
    ),
    "internal": ("agent", "any other failure of the agent"),
    "agent_unreachable": (
        "client",
        "the agent could not be reached (connection refused, DNS, connect timeout)",
    ),
    "stream_interrupted": ("client", "the connection broke, or the stream ended without `done`"),
    "bad_event": ("client", "the agent sent a frame that is not a valid event of this contract"),
}
"""Who raises each :data:`ErrorCode` (``agent``: an ``error`` event in the stream; ``client``: the client's
own report of a failed exchange) and what it means; the README's table is generated from it."""

HTTPStatusErrorCode = Annotated[str, StringConstraints(pattern=r"^http_[1-5][0-9]{2}$")]
"""``http_<status>``: a client's ``error`` for an agent that answered an HTTP error instead of a stream
(the UI shows ``http_422``, ``http_503``, ...). Never sent by an agent."""

HTTPErrorCode = Literal[
    "invalid_json",
    "invalid_request",
    "request_too_large",
    "thread_not_found",
    "thread_busy",
    "storage_unavailable",
    "overloaded",
    "unauthenticated",
    "forbidden",
    "rate_limited",
    "budget_exceeded",
    "not_found",
    "method_not_allowed",
    "http_error",
]
"""The ``code`` of a JSON error body ``{"error": {"code", "message"}}``, sent instead of a stream."""

HTTP_ERROR_CODES: dict[HTTPErrorCode, tuple[int | None, str]] = {
    "invalid_json": (400, "the body is not JSON"),
    "invalid_request": (
        422,
        "a missing, empty, over-long or mistyped `user_request`, a body that is not an object, or a "
        "malformed `thread_id`",
    ),
    "request_too_large": (413, "the body is over 256 KiB"),
    "thread_not_found": (404, "`GET`/`DELETE /threads/{id}` of a thread the agent does not hold"),
    "thread_busy": (409, "the thread has a run in progress; send the next message when it has finished"),
    "storage_unavailable": (503, "a platform store (conversations, limits) is unavailable; try again later"),
    "overloaded": (
        503,
        "every run slot and waiting place of the replica is taken (or the wait ran out); `Retry-After` says "
        "when to retry (Reliability)",
    ),
    "unauthenticated": (
        401,
        "no credential, or a malformed, unknown, revoked or expired one (with `WWW-Authenticate: Bearer`)",
    ),
    "forbidden": (403, "the credential is valid but lacks the scope the route needs"),
    "rate_limited": (429, "over the key's requests per minute; `Retry-After` says when to retry"),
    "budget_exceeded": (
        429,
        "the key's LLM token budget for this window is spent; `Retry-After` says when the next one starts",
    ),
    "not_found": (404, "no such route (e.g. an agent without the thread API)"),
    "method_not_allowed": (405, "the route does not take this HTTP method"),
    "http_error": (None, "any other HTTP error of the web framework, with its own status"),
}
"""The HTTP status of each :data:`HTTPErrorCode` and when it is sent; the README's table is generated
from it."""


# --- the request -------------------------------------------------------------------------------------

MAX_PRIOR_TURNS = 200


class PriorTurn(BaseModel):
    """One earlier turn a client brings to a new thread (``POST /chat`` ``history``).

    A client that keeps the conversation itself (an OpenAI-style client sends every message each time)
    starts a thread with its earlier turns: the agent sees them before ``user_request``, as if it had
    had that conversation. ``system`` turns are the client's instructions, kept beside the agent's own.
    """

    role: Literal["user", "assistant", "system"] = Field(description="who said it")
    content: str = Field(max_length=64_000, description="what was said, as text")


# --- events -------------------------------------------------------------------------------------------


class Metadata(BaseModel):
    """First frame of every stream: which run of which agent on which thread."""

    type: Literal["metadata"] = "metadata"
    thread_id: str = Field(description="the conversation; send it back as `thread_id` to continue it")
    run_id: str = Field(description="this run (one request and its answer), for logs")
    agent: str = Field(description="the agent's name")
    trace_id: str | None = Field(
        default=None,
        exclude_if=lambda value: value is None,  # absent, not null: older frames stay byte for byte
        description="the run's W3C trace id (32 hex characters), also in the `X-Trace-Id` header: one id "
        "across every hop of the request, in traces and logs",
    )


class Token(BaseModel):
    """A piece of the answer's text, as the model streams it."""

    type: Literal["token"] = "token"
    text: str = Field(description="the next piece of text; the pieces joined are the streamed text")


class ToolCall(BaseModel):
    """The model called a tool (A2A delegations are tools named `a2a_*`)."""

    type: Literal["tool_call"] = "tool_call"
    id: str = Field(description="the call's id; its `tool_result` has the same `id`")
    name: str = Field(description="the tool's name")
    args: dict[str, Any] = Field(default_factory=dict, description="the arguments, as a JSON object")


class ToolResult(BaseModel):
    """A tool answered one `tool_call`."""

    type: Literal["tool_result"] = "tool_result"
    id: str = Field(description="the `id` of the `tool_call` it answers")
    name: str = Field(description="the tool's name")
    status: Literal["ok", "error"] = Field(description="`error` when the tool failed; the run goes on")
    content: str = Field(description="the result (or the failure) as text, as the model sees it")


class Error(BaseModel):
    """A failure the client should show; `done` still follows."""

    type: Literal["error"] = "error"
    code: ErrorCode | HTTPStatusErrorCode = Field(description="what failed: one of the error codes below")
    message: str = Field(description="what failed, in words for a person")


class Usage(BaseModel):
    """Tokens the run spent, over all its model calls."""

    prompt_tokens: int = Field(default=0, description="tokens sent to the model")
    completion_tokens: int = Field(default=0, description="tokens the model produced")


class Done(BaseModel):
    """Last frame of every stream, also after an `error`."""

    type: Literal["done"] = "done"
    thread_id: str = Field(description="the conversation (as in `metadata`)")
    answer: str = Field(description="the final answer's text (empty after an error with no answer)")
    usage: Usage = Field(default_factory=Usage, description="`{prompt_tokens, completion_tokens}` of the run")


ChatEvent = Annotated[Metadata | Token | ToolCall | ToolResult | Error | Done, Field(discriminator="type")]
"""One frame of a ``/chat`` stream; ``type`` (the SSE event name) says which."""

CHAT_EVENT_ADAPTER: TypeAdapter[ChatEvent] = TypeAdapter(ChatEvent)
"""Validates a decoded frame (``{"type": ..., **data}``) into its event model."""

EVENT_MODELS: tuple[type[BaseModel], ...] = get_args(get_args(ChatEvent)[0])
"""The event models, in order of appearance in a stream."""


# Characters ``json.dumps(ensure_ascii=False)`` leaves raw that line splitters take for line breaks:
# ``str.splitlines`` and so httpx's ``aiter_lines`` (the platform's own client) split on them, which would
# cut a frame's JSON in two. Escaped, the data decodes to the same text.
_LINE_BREAKS_IN_JSON = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def encode_sse(event: ChatEvent) -> str:
    """One SSE frame; the ``type`` discriminator travels as the SSE event name, not in the data.

    The data is one line whatever the text holds: JSON escapes newlines and carriage returns, and the
    Unicode line separators (U+0085, U+2028, U+2029) are escaped too.
    """
    data = event.model_dump(exclude={"type"})
    text = json.dumps(data, ensure_ascii=False).translate(_LINE_BREAKS_IN_JSON)
    return f"event: {event.type}\ndata: {text}\n\n"


def decode_event(event_type: str, data: str) -> ChatEvent:
    """Parse one frame's event name and data back into its typed event.

    Raises ``ValueError`` (a ``pydantic.ValidationError`` for an unknown ``event_type`` or invalid
    fields) when the frame is not an event of this contract.
    """
    payload = json.loads(data)
    if not isinstance(payload, dict):
        raise ValueError(f"the data of a {event_type!r} frame is not a JSON object")
    return CHAT_EVENT_ADAPTER.validate_python({**payload, "type": event_type})


class SSEParser:
    """Incremental parser: feed it body lines, it returns an event whenever a frame completes.

    Comment lines (``: ping``, the server's keep-alives) and ``id:``/``retry:`` fields are skipped; several
    ``data:`` lines of one frame are joined with newlines, as the SSE specification says.
    """

    def __init__(self) -> None:
        self._event_type, self._data = "message", ""

    def feed(self, line: str) -> ChatEvent | None:
        """Take one body line; return the event when the line completes a frame, else None."""
        line = line.rstrip("\r\n")
        if line.startswith("event:"):
            self._event_type = line[len("event:") :].strip()
        elif line.startswith("data:"):
            value = line[len("data:") :].strip()
            self._data = f"{self._data}\n{value}" if self._data else value
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
