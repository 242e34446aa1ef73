"""Delegated calls: an internal hop authenticates as the platform and carries the end user.

When an agent running for a user calls ``/llm``, an MCP server or another agent's A2A face, it sends a
*delegation token* instead of the user's key (which it never sees again after the first hop)::

    rapd_<payload>.<signature>
    payload   = base64url(JSON {"sub": principal id, "name", "scopes", "key": key id | null, "exp"})
    signature = base64url(HMAC-SHA256(platform secret, payload))

The platform secret is shared by every replica through the platform database (``platform_secrets``, made
by the first replica that needs it) or set with ``PLATFORM_SECRET``. A caller outside the platform
cannot mint a token, so a forged "on behalf of" gets 401 like any bad credential.

A verified token's principal is the end user (ownership, budgets and usage follow the whole flow),
marked ``delegated``: the platform decided which internal hop to make, so the hop is allowed any scope
but ``admin`` (:meth:`identity.scopes.Principal.allows`). A user holding only ``agent:travel`` can so
run the travel flow, whose hops reach ``/llm``, the MCP servers and two other agents.

The token of the run in progress travels in a context variable (:func:`acting_for`), set by the run
loop around an agent run; :class:`PlatformAuth` (an ``httpx.Auth``) puts it, or the platform's own
token when no run is in progress (tool discovery, health checks), on every request to the platform's
own proxy, and on nothing else: a token never leaves for a third-party URL.
"""

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from identity.errors import Unauthenticated
from identity.scopes import Principal
from identity.store import Clock
from platform_core.settings import get_settings

TOKEN_PREFIX = "rapd_"
PLATFORM_PRINCIPAL_ID = "platform"
PLATFORM_TOKEN_TTL_S = 300.0
# A platform token is minted again once less than this is left of it.
PLATFORM_TOKEN_REFRESH_S = 60.0
INVALID = "invalid delegation token"

_acting_for: ContextVar[str | None] = ContextVar("identity_acting_for", default=None)


def is_delegation_token(token: str) -> bool:
    """Whether ``token`` has the delegation format (not whether it verifies)."""
    return token.startswith(TOKEN_PREFIX)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Delegation:
    """A verified delegation: whom the hop acts for, whose key's limits apply, until when."""

    principal: Principal
    key_id: str | None
    expires_at: float


class DelegationSigner:
    """Signs and verifies delegation tokens with the platform secret."""

    def __init__(self, secret: bytes, *, clock: Clock = time.time) -> None:
        if len(secret) < 32:
            raise ValueError("the platform secret must be at least 32 bytes")
        self._secret = secret
        self.clock = clock
        self._platform_token: tuple[float, str] | None = None

    def _signature(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def sign(self, principal: Principal, key_id: str | None, ttl_s: float) -> str:
        """A token acting for ``principal`` (limits of ``key_id``) for ``ttl_s`` seconds."""
        claims = {
            "sub": principal.id,
            "name": principal.name,
            "scopes": sorted(principal.scopes),
            "key": key_id,
            "exp": round(self.clock() + ttl_s, 3),
        }
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{TOKEN_PREFIX}{payload}.{self._signature(payload)}"

    def verify(self, token: str) -> Delegation:
        """The delegation ``token`` carries; raises :class:`Unauthenticated` (one message for any fault)."""
        body = token.removeprefix(TOKEN_PREFIX)
        payload, _, signature = body.partition(".")
        if not token.startswith(TOKEN_PREFIX) or not payload or not signature:
            raise Unauthenticated(INVALID)
        if not hmac.compare_digest(self._signature(payload).encode(), signature.encode()):
            raise Unauthenticated(INVALID)
        try:
            claims = json.loads(_unb64(payload))
            principal = Principal(
                id=str(claims["sub"]),
                name=str(claims["name"]),
                scopes=frozenset(str(scope) for scope in claims["scopes"]),
                delegated=True,
            )
            key_id = claims["key"]
            expires_at = float(claims["exp"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise Unauthenticated(INVALID) from None
        if expires_at <= self.clock():
            raise Unauthenticated("this delegation token has expired")
        return Delegation(
            principal=principal, key_id=None if key_id is None else str(key_id), expires_at=expires_at
        )

    def platform_token(self) -> str:
        """The platform's own token (no end user), for calls no user asked for; re-minted before expiry."""
        now = self.clock()
        if self._platform_token is None or self._platform_token[0] - now < PLATFORM_TOKEN_REFRESH_S:
            platform = Principal(id=PLATFORM_PRINCIPAL_ID, name=PLATFORM_PRINCIPAL_ID, scopes=frozenset())
            token = self.sign(platform, None, PLATFORM_TOKEN_TTL_S)
            self._platform_token = (now + PLATFORM_TOKEN_TTL_S, token)
        return self._platform_token[1]


@contextmanager
def acting_for(token: str | None) -> Iterator[None]:
    """Make ``token`` the delegation of the calls made inside (and by tasks started inside)."""
    reset = _acting_for.set(token)
    try:
        yield
    finally:
        _acting_for.reset(reset)


def current_delegation() -> str | None:
    """The delegation token of the run in progress in this context, if any."""
    return _acting_for.get()


def clear_delegation() -> None:
    """Forget any inherited delegation in this context: for a long-lived task shared by every run."""
    _acting_for.set(None)


# The process's signer, installed when its identity opens (one Serve replica, one identity).
_process_signer: DelegationSigner | None = None


def install_signer(signer: DelegationSigner | None) -> None:
    """Make ``signer`` this process's (None: auth is off here, internal calls carry no token)."""
    global _process_signer
    _process_signer = signer


def process_signer() -> DelegationSigner | None:
    """This process's signer, if its identity is on and open."""
    return _process_signer


def _origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    parts = urlsplit(str(url))
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


class PlatformAuth(httpx.Auth):
    """Sends the run's delegation (else the platform's own token) to the platform's proxy, only there.

    ``platform_url`` is the proxy's base URL (``SERVE_BASE_URL``); requests to any other origin (a
    third-party LLM, the public internet) keep their own headers. Without an installed signer (auth
    off) it sends nothing.

    ``delegate=False`` always sends the platform's own token: for a connection that a long-lived task
    shares between runs (an MCP session), which must never carry the user of the run that opened it.
    """

    def __init__(
        self,
        platform_url: str,
        *,
        delegate: bool = True,
        signer: Callable[[], DelegationSigner | None] = process_signer,
    ) -> None:
        self._origin = _origin(platform_url)
        self._delegate = delegate
        self._signer = signer

    def token_for(self, url: str | httpx.URL) -> str | None:
        """The token a request to ``url`` carries (None: not the platform's proxy, or auth off)."""
        signer = self._signer()
        if signer is None or _origin(url) != self._origin:
            return None
        return (current_delegation() if self._delegate else None) or signer.platform_token()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the token to a request for the platform's proxy."""
        token = self.token_for(request.url)
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request


def platform_auth(*, delegate: bool = True) -> PlatformAuth:
    """:class:`PlatformAuth` for this process's proxy (``SERVE_BASE_URL``)."""
    return PlatformAuth(get_settings().serve_base_url, delegate=delegate)
