"""Readable one-line descriptions of failures that reach a model, a client or a log line.

MCP transports (anyio task groups) wrap the real cause in nested ``ExceptionGroup``s; the leaf is what
a person or a model needs to see ("ConnectError: All connection attempts failed").
"""

MAX_MESSAGE_CHARS = 500


def root_causes(exc: BaseException) -> list[BaseException]:
    """The leaf exceptions of a (possibly nested) exception group; ``[exc]`` for a plain exception."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in root_causes(inner)]
    return [exc]


def describe_error(exc: BaseException, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``"Type: message"`` of the first root cause, truncated to ``limit`` characters."""
    leaf = root_causes(exc)[0]
    message = str(leaf).strip()
    text = f"{type(leaf).__name__}: {message}" if message else type(leaf).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
