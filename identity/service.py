"""One process's identity: the key store, verifier, limits and usage on the platform database.

Each process (a Serve replica, ``platform-keys``) opens its own :class:`IdentityService` in its event
loop and closes it on shutdown::

    async with IdentityService() as identity:         # DATABASE_URL, as every app
        principal = await identity.authenticate(request.headers, "agent:weather")

The tables (:mod:`identity.schema`) are created idempotently when it opens, under the platform's schema
lock (:func:`platform_core.sql.create_schema`).
"""

import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from identity.delegation import DelegationSigner, is_delegation_token
from identity.errors import Forbidden, Unauthenticated
from identity.keys import APIKey
from identity.limits import Counters, DatabaseCounters, Limits
from identity.oidc import OIDCVerifier, looks_like_jwt
from identity.schema import TABLES, platform_secrets
from identity.scopes import Principal
from identity.store import Clock, KeyStore
from identity.usage import UsageLedger
from identity.verifier import DEFAULT_CACHE_TTL_S, Verifier
from platform_core.errors import ConfigurationError
from platform_core.sql import (
    DatabaseURL,
    create_engine,
    create_schema,
    default_database_url,
    single_statements,
)

logger = logging.getLogger(__name__)

BEARER = "bearer"


def bearer_token(headers: Mapping[str, str]) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; raises :class:`Unauthenticated`.

    ``headers`` is any case-insensitive mapping (Starlette's ``Headers``, httpx's), or a plain dict with
    a lower-case ``authorization`` key.
    """
    value = headers.get("authorization")
    if not value:
        raise Unauthenticated("missing credential: send Authorization: Bearer <API key>", token_sent=False)
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != BEARER or not token.strip():
        raise Unauthenticated("malformed Authorization header: expected Bearer <API key>")
    return token.strip()


SIGNING_SECRET_NAME = "delegation"


@dataclass(frozen=True)
class Caller:
    """Who a request acts for (``principal``), whose limits apply (``key``), how it came in.

    ``delegation``: the delegation token the request carried (an internal hop), forwarded unchanged to
    the hops it makes in turn; None for a request with a user's own key.
    """

    principal: Principal
    key: APIKey | None = None
    delegation: str | None = None


class IdentityService:
    """Keys, verification, limits and usage of one process, on one database engine."""

    def __init__(
        self,
        url: str | None = None,
        *,
        pool_size: int = 5,
        cache_ttl_s: float = DEFAULT_CACHE_TTL_S,
        clock: Clock = time.time,
        cache_clock: Clock = time.monotonic,
        platform_secret: str | None = None,
        oidc: OIDCVerifier | None = None,
        limits_url: str | None = None,
    ) -> None:
        """``limits_url``: Redis (``redis://...``) for the per-key counters; default the database."""
        self.url = DatabaseURL.parse(url or default_database_url())
        self.engine: AsyncEngine = create_engine(self.url, pool_size=pool_size)
        self.keys = KeyStore(self.engine, clock=clock)
        self.limits = Limits(_counters(limits_url, self.engine, clock), clock=clock)
        self.usage = UsageLedger(self.engine, clock=clock)
        self.verifier = Verifier(self.keys, cache_ttl_s=cache_ttl_s, clock=cache_clock)
        self.clock = clock
        self.oidc = oidc
        self._platform_secret = platform_secret
        self._signer: DelegationSigner | None = None
        self._opened = False

    async def open(self) -> "IdentityService":
        """Create identity's tables if missing; raises ``DatabaseUnavailable`` when unreachable."""
        if not self._opened:
            await create_schema(self.url, self.engine, TABLES)
            self._opened = True
            logger.info("identity: keys in %s", self.url.describe())
        return self

    async def signer(self) -> DelegationSigner:
        """The platform's delegation signer: ``platform_secret``, else the secret in the database.

        The first replica that asks makes the database's secret (an insert that loses a race changes
        nothing), so every replica on the same database signs and verifies with the same one.
        """
        if self._signer is None:
            secret = self._platform_secret or await self._stored_secret()
            self._signer = DelegationSigner(secret.encode(), clock=self.clock)
        return self._signer

    async def _stored_secret(self) -> str:
        await self.open()
        insert = sqlite_insert if self.engine.dialect.name == "sqlite" else postgresql_insert
        candidate = {
            "name": SIGNING_SECRET_NAME,
            "value": secrets.token_urlsafe(48),
            "created_at": self.clock(),
        }
        async with single_statements(self.engine) as conn:
            await conn.execute(insert(platform_secrets).values(**candidate).on_conflict_do_nothing())
            stored = await conn.scalar(
                select(platform_secrets.c.value).where(platform_secrets.c.name == SIGNING_SECRET_NAME)
            )
        return str(stored)

    async def aclose(self) -> None:
        """Close this process's connections."""
        self._opened = False
        await self.limits.counters.aclose()
        await self.engine.dispose()

    async def __aenter__(self) -> "IdentityService":
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def verify(self, headers: Mapping[str, str]) -> APIKey:
        """The key of the request's bearer token (401 :class:`Unauthenticated` if none is valid)."""
        return await self.verifier.verify(bearer_token(headers))

    async def authenticate(
        self, headers: Mapping[str, str], scope: str | None = None, *, check_budget: bool = True
    ) -> Principal:
        """The principal of a request, allowed ``scope`` and within its key's limits.

        Raises 401 :class:`Unauthenticated`, 403 :class:`Forbidden` (the credential lacks ``scope``), or
        429 ``RateLimited`` / ``BudgetExceeded``. An allowed request is counted against the key's
        requests per minute; ``check_budget=False`` lets it through with its token budget spent (reading
        one's threads costs no tokens).
        """
        return (await self.identify(headers, scope, check_budget=check_budget)).principal

    async def identify(
        self, headers: Mapping[str, str], scope: str | None = None, *, check_budget: bool = True
    ) -> Caller:
        """:meth:`authenticate`, also accepting a delegation token; the :class:`Caller` with its key.

        A delegated hop is checked against its key's token budget but not its requests per minute
        (one user request makes many hops; the first one was counted).
        """
        token = bearer_token(headers)
        if self.oidc is not None and looks_like_jwt(token):
            principal = await self.oidc.verify(token)
            if scope is not None and not principal.allows(scope):
                raise Forbidden(scope)
            return Caller(principal=principal)  # limits are per API key; OIDC principals have usage
        if is_delegation_token(token):
            delegation = (await self.signer()).verify(token)
            key = await self.verifier.active_key(delegation.key_id) if delegation.key_id else None
            if scope is not None and not delegation.principal.allows(scope):
                raise Forbidden(scope)
            if key is not None and check_budget:
                (await self.limits.check(replace(key, rpm=None))).raise_if_refused()
            return Caller(principal=delegation.principal, key=key, delegation=token)
        key = await self.verifier.verify(token)
        principal = key.principal
        if scope is not None and not principal.allows(scope):
            raise Forbidden(scope)
        checked = key if check_budget else _without_budget(key)
        (await self.limits.check(checked)).raise_if_refused()
        return Caller(principal=principal, key=key)

    async def delegate(self, caller: Caller, ttl_s: float) -> str:
        """The delegation token for the hops made while serving ``caller`` (its own, when it had one)."""
        if caller.delegation is not None:
            return caller.delegation
        key_id = caller.key.key_id if caller.key is not None else None
        return (await self.signer()).sign(caller.principal, key_id, ttl_s)

    async def count_tokens(self, caller: Caller, prompt_tokens: int, completion_tokens: int) -> None:
        """LLM tokens spent for ``caller``: against its key's budget and in its principal's usage."""
        if caller.key is not None:
            await self.limits.add_tokens(caller.key, prompt_tokens + completion_tokens)
        await self.usage.record(
            caller.principal, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )


def _counters(limits_url: str | None, engine: AsyncEngine, clock: Clock) -> Counters:
    """The store of the per-key counters: Redis at ``limits_url``, else the platform database."""
    if not limits_url:
        return DatabaseCounters(engine)
    if not limits_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(
            "LIMITS_URL must be a Redis URL (redis://host:6379/0, rediss://... or unix://...); "
            "leave it unset to count in the platform database"
        )
    from identity.redis_limits import RedisCounters

    return RedisCounters(limits_url, clock=clock)


def _without_budget(key: APIKey) -> APIKey:
    return replace(key, token_budget=None, budget_window_s=None)
