"""The platform's exception tree, and readable one-line descriptions of failures.

Every error the platform raises on purpose derives from :class:`PlatformError`, so a caller can catch
the platform's failures apart from library and programming errors::

    PlatformError
     ├── APIError                 an HTTP error answer (platform_core.api_errors)
     │    ├── Unauthenticated         401: no valid credential (identity.errors)
     │    ├── Forbidden               403: the credential lacks the route's scope
     │    ├── RateLimited             429: over the key's requests per minute
     │    └── BudgetExceeded          429: the key's token budget is spent
     ├── ConfigurationError       a setting or builder arg that cannot work
     ├── DatabaseUnavailable      the platform database failed (platform_core.sql)
     ├── KeyNameTaken             a key of that name exists (identity.errors)
     ├── ThreadBusy               a thread already has a run in progress (agent_runtime.state.leases)
     ├── LLMUnavailable           the model endpoint cannot be reached (agent_runtime.llm_client)
     ├── AgentRunError            a run ended by the platform's run policy (agent_runtime.factories)
     │    ├── ToolRoundsExceeded
     │    └── InvalidToolCall
     ├── A2ACallError             a call to a remote agent failed (protocols.a2a_client)
     │    ├── A2AUnavailable
     │    ├── A2ATimeout
     │    └── A2ATaskFailed
     ├── ChatClientError          a call of the ``/chat`` client failed (protocols.chat_client)
     │    ├── ChatRequestError        the agent answered an HTTP error before any stream
     │    └── ChatStreamError         the exchange broke (unreachable, cut, off-contract frame)
     └── OpenAIError              an error in the OpenAI shape (/llm, /openai: platform_core.openai_errors)

MCP transports (anyio task groups) wrap the real cause in nested ``ExceptionGroup``s; the leaf is what
a person or a model needs to see ("ConnectError: All connection attempts failed"): :func:`describe_error`.
"""

MAX_MESSAGE_CHARS = 500


class PlatformError(Exception):
    """Root of every exception the platform raises on purpose."""


class ConfigurationError(PlatformError, ValueError):
    """A setting or builder arg that cannot work (raised at start-up, never mid-request)."""


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
