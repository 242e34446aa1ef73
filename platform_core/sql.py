"""The platform database's plumbing, shared by every package that keeps state in it.

``DATABASE_URL`` picks the store for every app; unset, it is an embedded SQLite file
``<DATA_DIR>/agents.db`` (:func:`default_database_url`):

- ``sqlite:///relative/or/absolute.db`` (``sqlite:////abs/path.db`` also works): one file that several
  replicas on one machine share safely (WAL journal, a busy timeout so concurrent writers wait instead
  of failing). Local disks only: SQLite's locking does not hold over network file systems.
- ``postgresql://user:password@host:5432/db`` (``postgres://`` too, libpq query options such as
  ``sslmode`` included): the store for replicas on several machines, on a SQLAlchemy engine over
  ``asyncpg``.

Here: the parsed URL (:class:`DatabaseURL`), the SQLAlchemy async engine with the platform's SQLite
settings (:func:`create_engine`), connections whose statements commit one by one
(:func:`single_statements`), and idempotent schema creation that replicas starting together do not race
on (:func:`create_schema`). What lives in the database is the business of the packages above:
``agent_runtime.state`` (conversations, A2A tasks, thread leases) and ``identity`` (API keys, limits,
usage). Import it from here: it loads SQLAlchemy and the drivers, which the settings do not need.
"""

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import aiosqlite
import asyncpg
from sqlalchemy import Connection, Table, event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateIndex, CreateTable

from platform_core.errors import PlatformError, describe_error
from platform_core.settings import PlatformSettings, get_settings

logger = logging.getLogger(__name__)

SQLITE_FILE_NAME = "agents.db"
BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
SCHEMA_LOCK_KEY = 7_340_012_517
"""The PostgreSQL advisory lock held while a schema is created. Any constant works: it only has to be the
same in every process that creates the platform's tables."""


class DatabaseUnavailable(PlatformError, RuntimeError):
    """The configured database cannot be opened (the message names it, never its password)."""


def default_database_url(settings: PlatformSettings | None = None) -> str:
    """``DATABASE_URL``, else the embedded SQLite file under ``DATA_DIR``."""
    settings = settings or get_settings()
    if settings.database_url is not None and settings.database_url.get_secret_value():
        return settings.database_url.get_secret_value()
    return f"sqlite:///{settings.data_path / SQLITE_FILE_NAME}"


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed ``DATABASE_URL``: which backend, and how each driver connects to it."""

    kind: Literal["sqlite", "postgresql"]
    url: str
    sqlite_path: Path | None = None

    @classmethod
    def parse(cls, url: str) -> "DatabaseURL":
        """Read a ``DATABASE_URL``; raises ``ValueError`` for a scheme or path the platform cannot use."""
        scheme, sep, rest = url.partition("://")
        backend = scheme.split("+", 1)[0].lower()
        if not sep:
            raise ValueError(f"DATABASE_URL must look like sqlite:///path or postgresql://...; got {url!r}")
        if backend == "sqlite":
            path = rest[1:] if rest.startswith("/") else rest  # sqlite:///rel, sqlite:////abs
            path = path.split("?", 1)[0]
            if not path or path == ":memory:":
                raise ValueError("a SQLite DATABASE_URL needs a file path (replicas share the file)")
            return cls(kind="sqlite", url=url, sqlite_path=Path(path).expanduser().resolve())
        if backend in ("postgresql", "postgres"):
            return cls(kind="postgresql", url=f"postgresql://{rest}")
        raise ValueError(f"unsupported DATABASE_URL scheme {scheme!r}: use sqlite:/// or postgresql://")

    def describe(self) -> str:
        """Where the database is, for logs and errors: no user name, no password."""
        if self.kind == "sqlite":
            return f"SQLite at {self.sqlite_path}"
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
        return f"PostgreSQL at {host}:{port}{parts.path or '/'}"

    @property
    def libpq_url(self) -> str:
        """The URL as libpq (psycopg) and asyncpg read it."""
        return self.url


# --- SQLite -------------------------------------------------------------------------------------------


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy, not the driver, opens transactions (see _sqlite_begin). WAL is set once per file, by
    # enable_wal(): it persists in the file.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


async def enable_wal(path: Path) -> None:
    """Put a SQLite file in WAL mode (readers never block the writer; several processes share it).

    The first switch of a new file needs it to itself: SQLite answers "database is locked" at once, without
    waiting, when another process opens the file at that moment, so this retries.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.02
    while True:
        try:
            async with aiosqlite.connect(path, timeout=BUSY_TIMEOUT_S) as conn:
                async with conn.execute("PRAGMA journal_mode=WAL") as cursor:
                    mode = (await cursor.fetchone() or ("?",))[0]
            if str(mode).lower() == "wal":
                return
            raise sqlite3.OperationalError(f"journal mode is {mode}")
        except sqlite3.OperationalError as exc:
            if time.monotonic() > deadline:
                raise
            logger.debug("WAL switch of %s: %s; retrying", path, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)


# An execution option of SQLite connections from :func:`single_statements`: no BEGIN IMMEDIATE, each
# statement commits on its own (the driver connection is in autocommit, see _sqlite_connect).
_SQLITE_SINGLE_STATEMENTS = "platform_single_statements"


def _sqlite_begin(conn: Connection) -> None:
    # Take the write lock when a transaction starts: a transaction that reads, then writes (a2a-sdk's
    # compare-and-swap, check-then-create) stays atomic across processes, and SQLite never has to answer
    # "database is locked" at once to break a lock-upgrade deadlock.
    if conn.get_execution_options().get(_SQLITE_SINGLE_STATEMENTS):
        return
    conn.exec_driver_sql("BEGIN IMMEDIATE")


@asynccontextmanager
async def single_statements(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection on which every statement commits on its own.

    For work that is one atomic statement each (the thread leases' INSERT, conditional UPDATE, DELETE
    and SELECT; the identity counters' upserts).
    On SQLite a transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) holds the file's one write lock across
    three trips between the event loop and the driver's thread: on a busy event loop that is long, and
    every other process's writer waits for it (or gives up with "database is locked"). Here the lock is
    held only while the statement runs, and reads take no write lock at all. On PostgreSQL: autocommit.
    """
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execution_options(**{_SQLITE_SINGLE_STATEMENTS: True})
        else:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def reads_only(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` (the same pool) for a component that only reads: on SQLite its sessions take no write lock.

    Every other transaction begins with ``BEGIN IMMEDIATE`` (see :func:`_sqlite_begin`), so a poller's
    SELECT would hold the file's one write lock for its round trips; many pollers on busy event loops (the
    A2A event stream polls twice a second per subscriber) then starve every writer of every process.
    """
    if engine.dialect.name != "sqlite":
        return engine
    return engine.execution_options(**{_SQLITE_SINGLE_STATEMENTS: True})


# --- engines and schemas ------------------------------------------------------------------------------


def create_engine(url: DatabaseURL, *, pool_size: int = 5) -> AsyncEngine:
    """A SQLAlchemy async engine on the database (aiosqlite or asyncpg)."""
    if url.kind == "sqlite":
        assert url.sqlite_path is not None
        url.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            f"sqlite+aiosqlite:///{url.sqlite_path}", connect_args={"timeout": BUSY_TIMEOUT_S}
        )
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine

    async def connect() -> asyncpg.Connection:
        # asyncpg reads the libpq URL itself (sslmode and friends included).
        return await asyncpg.connect(url.libpq_url, timeout=CONNECT_TIMEOUT_S)

    return create_async_engine(
        "postgresql+asyncpg://",
        async_creator=connect,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def create_tables(conn: Connection, tables: Sequence[Table]) -> None:
    """``CREATE TABLE IF NOT EXISTS`` (and its indexes) for each table, in order (for ``run_sync``).

    Not ``create_all``'s check-then-create: replicas starting together on one SQLite file would race
    between the check and the ``CREATE``.
    """
    for table in tables:
        conn.execute(CreateTable(table, if_not_exists=True))
        for index in table.indexes:
            conn.execute(CreateIndex(index, if_not_exists=True))


@asynccontextmanager
async def schema_lock(engine: AsyncEngine, key: int = SCHEMA_LOCK_KEY) -> AsyncIterator[AsyncConnection]:
    """A connection that holds the schema lock (PostgreSQL: an advisory lock; SQLite: the file lock).

    On PostgreSQL the connection is in autocommit (an open transaction would stall a ``CREATE INDEX
    CONCURRENTLY`` run under the lock, e.g. LangGraph's).
    """
    if engine.dialect.name == "sqlite":
        async with engine.begin() as conn:
            yield conn
        return
    async with engine.connect() as raw:
        conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
        # Try, never wait inside the server: a waiting statement would in turn stall the lock holder's
        # CREATE INDEX CONCURRENTLY, which waits for every running statement (a deadlock the server
        # cannot see).
        while not (await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})).scalar():
            await asyncio.sleep(0.1)
        try:
            yield conn
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


async def create_schema(url: DatabaseURL, engine: AsyncEngine, tables: Sequence[Table]) -> None:
    """Make the database usable and create ``tables`` idempotently (WAL for SQLite, under the schema lock).

    Raises :class:`DatabaseUnavailable` (naming the database, never its password) when it cannot be
    reached; the engine's connections are closed then.
    """
    try:
        if url.sqlite_path is not None:
            await enable_wal(url.sqlite_path)
        async with schema_lock(engine) as conn:
            await conn.run_sync(create_tables, list(tables))
    except Exception as exc:
        await engine.dispose()
        raise DatabaseUnavailable(f"cannot reach {url.describe()}: {describe_error(exc)}") from exc
