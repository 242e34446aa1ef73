"""Identity, shared by every app: principals and scopes, API keys, limits and usage.

Floor 2 of the layers (beside :mod:`protocols`): it imports only :mod:`platform_core`; the apps above
(``agent_runtime``, ``llm``, ``mcp_servers``) import it.

- :mod:`identity.scopes`: :class:`Principal` and the scopes (``agent:<name>``, ``llm``, ``mcp:<server>``,
  ``admin``, ...).
- :mod:`identity.keys`: the secret's format (``rap_<key id>_<secret>``), its hash, :class:`APIKey`.
- :mod:`identity.store`: :class:`KeyStore`, keys in the platform database.
- :mod:`identity.verifier`: :class:`Verifier`, token to key, with a cache of at most 5 s.
- :mod:`identity.limits`: :class:`Limits`, requests per minute and LLM tokens per window, per key, on a
  :class:`Counters` store: :class:`DatabaseCounters` (default) or :mod:`identity.redis_limits`
  (``LIMITS_URL``).
- :mod:`identity.usage`: :class:`UsageLedger`, usage per principal and day.
- :mod:`identity.service`: :class:`IdentityService`, all of them on one engine for one process, and the
  :class:`Caller` of a request.
- :mod:`identity.delegation`: platform-signed delegation tokens for internal hops, :class:`PlatformAuth`.
- :mod:`identity.gate`: :class:`AuthGate`, one app's door (``AUTH`` on, off or auto).
- :mod:`identity.middleware`: :class:`RequireScope`, the door as ASGI middleware (``/llm``, MCP, A2A).
- :mod:`identity.asgi`: :func:`require_scope` and :func:`authenticate_request` for FastAPI apps.
- :mod:`identity.errors`: the 401/403/429/503 ``APIError`` subclasses.
- :mod:`identity.cli`: the ``platform-keys`` console script.
"""

from identity.asgi import authenticate_request, install_identity, require_scope
from identity.delegation import DelegationSigner, PlatformAuth, acting_for, platform_auth
from identity.errors import (
    BudgetExceeded,
    Forbidden,
    KeyNameTaken,
    LimitsUnavailable,
    RateLimited,
    Unauthenticated,
)
from identity.gate import ANONYMOUS, AuthGate
from identity.keys import APIKey
from identity.limits import Counters, DatabaseCounters, Decision, Limits, Window
from identity.middleware import RequireScope
from identity.oidc import OIDCSettings, OIDCVerifier
from identity.scopes import Principal, parse_scope
from identity.service import Caller, IdentityService, bearer_token
from identity.store import KeyStore
from identity.usage import UsageLedger, UsageRow
from identity.verifier import Verifier

__all__ = [
    # who and what
    "Principal",
    "parse_scope",
    # keys
    "APIKey",
    "KeyStore",
    "Verifier",
    # OIDC tokens
    "OIDCSettings",
    "OIDCVerifier",
    # limits and usage
    "Counters",
    "DatabaseCounters",
    "Decision",
    "Limits",
    "Window",
    "UsageLedger",
    "UsageRow",
    # delegation of internal hops
    "DelegationSigner",
    "PlatformAuth",
    "acting_for",
    "platform_auth",
    # one process's identity, and the apps' doors
    "ANONYMOUS",
    "AuthGate",
    "Caller",
    "IdentityService",
    "RequireScope",
    "authenticate_request",
    "bearer_token",
    "install_identity",
    "require_scope",
    # errors
    "BudgetExceeded",
    "Forbidden",
    "KeyNameTaken",
    "LimitsUnavailable",
    "RateLimited",
    "Unauthenticated",
]
