"""One process's identity: the key store, verifier, limits and usage on the platform database.

Each process (a Serve replica, ``platform-keys``) opens its own :class:`IdentityService` in its event
loop and closes it on shutdown::

    async with IdentityService() as identity:         # DATABASE_URL, as every app
        principal = await identity.authenticate(request.headers, "agent:weather")

The tables (:mod:`identity.schema`) are created idempotently when it opens, under the platform's schema
lock (:func:`platform_core.sql.create_schema`).
"""

import logging
import time
from collections.abc import Mapping
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from identity.errors import Forbidden, Unauthenticated
from identity.keys import APIKey
from identity.limits import Limits
from identity.schema import TABLES
from identity.scopes import Principal
from identity.store import Clock, KeyStore
from identity.usage import UsageLedger
from identity.verifier import DEFAULT_CACHE_TTL_S, Verifier
from platform_core.sql import DatabaseURL, create_engine, create_schema, default_database_url

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
    ) -> None:
        self.url = DatabaseURL.parse(url or default_database_url())
        self.engine: AsyncEngine = create_engine(self.url, pool_size=pool_size)
        self.keys = KeyStore(self.engine, clock=clock)
        self.limits = Limits(self.engine, clock=clock)
        self.usage = UsageLedger(self.engine, clock=clock)
        self.verifier = Verifier(self.keys, cache_ttl_s=cache_ttl_s, clock=cache_clock)
        self._opened = False

    async def open(self) -> "IdentityService":
        """Create identity's tables if missing; raises ``DatabaseUnavailable`` when unreachable."""
        if not self._opened:
            await create_schema(self.url, self.engine, TABLES)
            self._opened = True
            logger.info("identity: keys in %s", self.url.describe())
        return self

    async def aclose(self) -> None:
        """Close this process's connections."""
        self._opened = False
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
        key = await self.verify(headers)
        principal = key.principal
        if scope is not None and not principal.allows(scope):
            raise Forbidden(scope)
        checked = key if check_budget else _without_budget(key)
        (await self.limits.check(checked)).raise_if_refused()
        return principal


def _without_budget(key: APIKey) -> APIKey:
    return replace(key, token_budget=None, budget_window_s=None)
