"""The HTTP errors of identity: each an :class:`~platform_core.api_errors.APIError` with its code.

``APIError`` (``PlatformError``)
 ├── ``Unauthenticated``  401 ``unauthenticated``: no, a malformed, unknown, revoked or expired credential
 │                        (``WWW-Authenticate: Bearer``)
 ├── ``Forbidden``        403 ``forbidden``: a valid credential without the scope the route needs
 ├── ``RateLimited``      429 ``rate_limited``: over the key's requests per minute (``Retry-After``)
 ├── ``BudgetExceeded``   429 ``budget_exceeded``: the key's LLM tokens of this window are spent
 │                        (``Retry-After``)
 └── ``LimitsUnavailable`` 503 ``storage_unavailable``: the limits store (Redis, ``LIMITS_URL``) cannot be
                          reached (``Retry-After``)

Messages never carry a secret, and never say anything about another principal.
"""

import math

from platform_core.api_errors import APIError
from platform_core.errors import PlatformError


class Unauthenticated(APIError):
    """No usable credential: 401 with ``WWW-Authenticate: Bearer`` (RFC 6750)."""

    def __init__(self, message: str, *, token_sent: bool = True) -> None:
        # RFC 6750 §3.1: no error attribute when the request had no credential at all.
        challenge = (
            'Bearer realm="platform", error="invalid_token"' if token_sent else 'Bearer realm="platform"'
        )
        super().__init__(401, "unauthenticated", message, headers={"WWW-Authenticate": challenge})


class Forbidden(APIError):
    """A valid credential that lacks the scope the route needs: 403."""

    def __init__(self, scope: str) -> None:
        super().__init__(403, "forbidden", f"this credential does not grant the scope {scope!r}")
        self.scope = scope


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class RateLimited(APIError):
    """Over the key's requests per minute: 429 with ``Retry-After``."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(
            429,
            "rate_limited",
            "too many requests for this key; retry later",
            headers=_retry_after(retry_after_s),
        )
        self.retry_after_s = retry_after_s


class BudgetExceeded(APIError):
    """The key's LLM token budget of the current window is spent: 429 with ``Retry-After``."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(
            429,
            "budget_exceeded",
            "this key's token budget for the current window is spent",
            headers=_retry_after(retry_after_s),
        )
        self.retry_after_s = retry_after_s


class LimitsUnavailable(APIError):
    """The store of the per-key counters cannot be reached: 503 with ``Retry-After``, never a 500.

    A request is refused rather than let through uncounted: limits that fail open are no limits.
    """

    RETRY_AFTER_S = 5

    def __init__(self) -> None:
        super().__init__(
            503,
            "storage_unavailable",
            "the limits store is unavailable; try again later",
            headers=_retry_after(self.RETRY_AFTER_S),
        )


class KeyNameTaken(PlatformError, ValueError):
    """``platform-keys create`` with a name another key (active or not) already has."""
