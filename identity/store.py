"""The key store: API keys in the platform database, shared by every replica and ``platform-keys``.

Keys are created with a secret handed out once (:meth:`KeyStore.create`), read by id (the verifier) or
name (the CLI), listed, and revoked. Revoked keys stay in the table (their name stays taken), so usage
and audit always name one key.
"""

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

from sqlalchemy import RowMapping, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from identity.errors import KeyNameTaken
from identity.keys import APIKey, new_secret
from identity.schema import api_keys
from identity.scopes import parse_scope
from platform_core.sql import single_statements

Clock = Callable[[], float]
"""Unix time in seconds (``time.time``); tests inject their own."""

DEFAULT_BUDGET_WINDOW_S = 86_400.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")


def check_name(name: str) -> str:
    """``name`` if it can name a key, else ``ValueError``.

    A name is a letter or digit, then letters, digits, ``.``, ``_``, ``@`` or ``-``; at most 128.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a key name: {name!r}; use letters, digits, '.', '_', '@' and '-' (max 128)")
    return name


def _positive(value: float | None, what: str) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{what} must be positive; got {value}")


def _record(row: RowMapping) -> APIKey:
    return APIKey(
        key_id=row["key_id"],
        name=row["name"],
        scopes=tuple(row["scopes"].split()),
        secret_hash=row["secret_hash"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        rpm=row["rpm"],
        token_budget=row["token_budget"],
        budget_window_s=row["budget_window_s"],
    )


class KeyStore:
    """API keys on a SQLAlchemy async engine (the tables come from :mod:`identity.schema`)."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = time.time) -> None:
        self.engine = engine
        self.clock = clock

    async def create(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        expires_in_s: float | None = None,
        rpm: int | None = None,
        token_budget: int | None = None,
        budget_window_s: float | None = None,
    ) -> tuple[APIKey, str]:
        """A new key and its secret token (shown once: only its hash is stored).

        ``token_budget`` without ``budget_window_s`` is per day. Raises :class:`KeyNameTaken` when the
        name is in use, ``ValueError`` for a bad name, scope or limit.
        """
        check_name(name)
        granted = tuple(dict.fromkeys(parse_scope(scope) for scope in scopes))
        if not granted:
            raise ValueError("a key needs at least one scope")
        for value, what in ((expires_in_s, "expiry"), (rpm, "rpm"), (token_budget, "token budget")):
            _positive(value, what)
        _positive(budget_window_s, "budget window")
        if token_budget is not None and budget_window_s is None:
            budget_window_s = DEFAULT_BUDGET_WINDOW_S
        now = self.clock()
        made = new_secret()
        key = APIKey(
            key_id=made.key_id,
            name=name,
            scopes=granted,
            secret_hash=made.secret_hash,
            created_at=now,
            expires_at=None if expires_in_s is None else now + expires_in_s,
            rpm=rpm,
            token_budget=token_budget,
            budget_window_s=budget_window_s if token_budget is not None else None,
        )
        row = {**asdict(key), "scopes": " ".join(key.scopes)}
        try:
            async with single_statements(self.engine) as conn:
                await conn.execute(api_keys.insert().values(**row))
        except IntegrityError as exc:
            raise KeyNameTaken(
                f"a key named {name!r} exists already (revoked keys keep their names)"
            ) from exc
        return key, made.token

    async def get(self, key_id: str) -> APIKey | None:
        """The key with this id (active or not), or None."""
        return await self._one(api_keys.c.key_id == key_id)

    async def by_name(self, name: str) -> APIKey | None:
        """The key with this name (active or not), or None."""
        return await self._one(api_keys.c.name == name)

    async def list(self) -> list[APIKey]:
        """Every key, oldest first."""
        async with single_statements(self.engine) as conn:
            rows = (await conn.execute(select(api_keys).order_by(api_keys.c.created_at))).mappings()
            return [_record(row) for row in rows]

    async def revoke(self, name: str) -> APIKey | None:
        """Revoke the key ``name`` (idempotent: the first revocation's time stays); None if no such key.

        Verifiers notice within their cache TTL (at most 5 s): :class:`identity.verifier.Verifier`.
        """
        async with single_statements(self.engine) as conn:
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            )
        return await self.by_name(name)

    async def _one(self, where: Any) -> APIKey | None:
        async with single_statements(self.engine) as conn:
            row = (await conn.execute(select(api_keys).where(where))).mappings().first()
        return None if row is None else _record(row)
