"""Wire contracts between the platform's apps and their clients, below every app (see docs/architecture.md).

- :mod:`protocols.events`: the ``/chat`` SSE events, the error codes, SSE encoding and parsing;
- :mod:`protocols.threads`: the thread API's body (``GET /threads/{id}``);
- :mod:`protocols.chat_client`: the async client of an agent (``/chat``, threads, ``/health``);
- :mod:`protocols.reference`: writes the README's ``/chat`` tables from the models (``make docs``);
- :mod:`protocols.a2a_client`: the A2A client (import it from there: it loads a2a-sdk, which the rest of
  the contracts do not need).
"""

from protocols.chat_client import (
    ChatClient,
    ChatClientError,
    ChatRequestError,
    ChatResult,
    ChatStreamError,
)
from protocols.events import (
    THREAD_ID_PATTERN,
    ChatEvent,
    Done,
    Error,
    ErrorCode,
    HTTPErrorCode,
    Metadata,
    PriorTurn,
    SSEParser,
    Token,
    ToolCall,
    ToolResult,
    Usage,
    aiter_sse_events,
    decode_event,
    encode_sse,
    is_valid_thread_id,
    parse_sse_lines,
)
from protocols.threads import ThreadMessage, ThreadToolCall, ThreadView

__all__ = [
    # events
    "ChatEvent",
    "Done",
    "Error",
    "ErrorCode",
    "HTTPErrorCode",
    "Metadata",
    "PriorTurn",
    "Token",
    "ToolCall",
    "ToolResult",
    "Usage",
    "THREAD_ID_PATTERN",
    "is_valid_thread_id",
    # SSE encoding and parsing
    "SSEParser",
    "aiter_sse_events",
    "decode_event",
    "encode_sse",
    "parse_sse_lines",
    # threads
    "ThreadMessage",
    "ThreadToolCall",
    "ThreadView",
    # client
    "ChatClient",
    "ChatClientError",
    "ChatRequestError",
    "ChatResult",
    "ChatStreamError",
]
