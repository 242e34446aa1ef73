"""Identity's tables in the platform database (``DATABASE_URL``), created idempotently at start-up.

- ``api_keys``: one row per key (its secret only as a hash), revoked keys kept (usage and audit);
- ``key_counters``: per key, requests and LLM tokens counted per window (shared by every replica);
- ``usage_daily``: per principal and UTC day, runs, prompt and completion tokens and tool calls;
- ``platform_secrets``: the platform's own signing key for delegated calls (:mod:`identity.delegation`),
  made once by the first replica that needs it.
"""

from collections.abc import Mapping
from typing import Any

from sqlalchemy import BigInteger, Column, ColumnElement, Float, Insert, Integer, MetaData, String, Table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("scopes", String(2048), nullable=False),  # space-separated
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),  # unix time (seconds), as every time here
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Column("rpm", Integer, nullable=True),
    Column("token_budget", BigInteger, nullable=True),
    Column("budget_window_s", Float, nullable=True),
)

key_counters = Table(
    "key_counters",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("kind", String(16), primary_key=True),  # "requests" | "tokens"
    Column("window_start", BigInteger, primary_key=True),  # unix seconds, a multiple of the window
    Column("window_end", BigInteger, nullable=False, index=True),
    Column("count", BigInteger, nullable=False),
)

usage_daily = Table(
    "usage_daily",
    metadata,
    Column("principal_id", String(192), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD, UTC
    Column("principal_name", String(128), nullable=False),
    Column("runs", BigInteger, nullable=False, default=0),
    Column("prompt_tokens", BigInteger, nullable=False, default=0),
    Column("completion_tokens", BigInteger, nullable=False, default=0),
    Column("tool_calls", BigInteger, nullable=False, default=0),
)

platform_secrets = Table(
    "platform_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
)

TABLES = [api_keys, key_counters, usage_daily, platform_secrets]


def add_to(
    dialect: str,
    table: Table,
    key: Mapping[str, Any],
    increments: Mapping[str, int],
    *,
    values: Mapping[str, Any] | None = None,
    only_if: ColumnElement[bool] | None = None,
    returning: bool = True,
) -> Insert:
    """One atomic statement that inserts a counter row or adds to the one that exists.

    The row ``key`` gets ``increments`` (and ``values``) when new; else ``increments`` are added to it
    (and ``values`` set). The statement returns the row's new ``increments`` unless ``returning=False``:
    a caller that does not read them must not ask, since on SQLite a ``RETURNING`` statement whose rows
    were not read holds the file's write lock until its cursor is closed.

    ``only_if`` guards the update: when it is false for the existing row, nothing changes and the
    statement returns no row. SQLite (3.35+) and PostgreSQL both run it as ``INSERT ... ON CONFLICT DO
    UPDATE ... RETURNING``, so replicas counting at once never lose a count.
    """
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    values = dict(values or {})
    stmt = insert(table).values(**key, **increments, **values)
    update = {column: table.c[column] + stmt.excluded[column] for column in increments}
    update |= {column: stmt.excluded[column] for column in values}
    stmt = stmt.on_conflict_do_update(index_elements=list(key), set_=update, where=only_if)
    return stmt.returning(*(table.c[column] for column in increments)) if returning else stmt
