"""The platform's one database: conversations (LangGraph checkpoints), A2A tasks and thread leases.

``DATABASE_URL`` picks the store for every app; unset, it is an embedded SQLite file
``<DATA_DIR>/agents.db``:

- ``sqlite:///relative/or/absolute.db`` (``sqlite:////abs/path.db`` also works): one file that several
  replicas on one machine share safely (WAL journal, a busy timeout so concurrent writers wait instead
  of failing). Local disks only: SQLite's locking does not hold over network file systems.
- ``postgresql://user:password@host:5432/db`` (``postgres://`` too, libpq query options such as
  ``sslmode`` included): the store for replicas on several machines. LangGraph's ``AsyncPostgresSaver``
  runs on a ``psycopg_pool`` pool, everything else on a SQLAlchemy engine over ``asyncpg``.

Each process (a Serve replica, the retention command) opens its own :class:`Database` inside its event
loop and closes it on shutdown. Schemas are created idempotently when opened; with PostgreSQL under an
advisory lock, so replicas starting together do not race on ``CREATE TABLE``.

Tables (LangGraph's and a2a-sdk's own, plus ``thread_runs``):

- ``checkpoints``, ``writes`` (SQLite) / ``checkpoints``, ``checkpoint_blobs``, ``checkpoint_writes``,
  ``checkpoint_migrations`` (PostgreSQL): agent memory, keyed by ``"<agent>/<thread_id>"``
  (:func:`thread_key`), so agents sharing the database never share a conversation;
- ``tasks``, ``task_versions``, ``task_events``: A2A tasks (a2a-sdk's clustered task store: versioned
  writes, so a cancel recorded by one replica is never overwritten by the replica running the task);
  the owner column is ``"<agent>:<user>"``, so an A2A app only sees its own agent's tasks;
- ``thread_runs``: which run holds a thread right now (:mod:`agent_runtime.state.leases`).
"""

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import aiosqlite
import asyncpg
import psycopg
from a2a.server.cluster import DatabaseTaskEventStream, VersionedDatabaseTaskStore
from a2a.server.context import ServerCallContext
from a2a.server.models import TaskEventModel, TaskModel, TaskVersionModel
from a2a.server.owner_resolver import resolve_user_scope
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Column, Connection, Float, MetaData, String, Table, event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateIndex, CreateTable

from platform_core.errors import describe_error
from platform_core.settings import PlatformSettings, get_settings

logger = logging.getLogger(__name__)

SQLITE_FILE_NAME = "agents.db"
BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
# Any constant works: it only has to be the same in every process that creates the schema.
_SCHEMA_LOCK_KEY = 7_340_012_517

metadata = MetaData()

thread_runs = Table(
    "thread_runs",
    metadata,
    Column("thread_key", String(255), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("replica", String(255), nullable=False),
    Column("expires_at", Float, nullable=False),  # unix time (seconds)
)


_A2A_TABLES = [model.__table__ for model in (TaskModel, TaskVersionModel, TaskEventModel)]


def _create_tables(conn: Connection, tables: list[Table]) -> None:
    # IF NOT EXISTS, not create_all's check-then-create: replicas starting together on one SQLite file
    # would race between the check and the CREATE.
    for table in tables:
        conn.execute(CreateTable(table, if_not_exists=True))
        for index in table.indexes:
            conn.execute(CreateIndex(index, if_not_exists=True))


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be opened (the message names it, never its password)."""


def thread_key(agent: str, thread_id: str) -> str:
    """The key of an agent's conversation in the shared store (thread ids cannot contain ``/``)."""
    return f"{agent}/{thread_id}"


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


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy, not the driver, opens transactions (see _sqlite_begin). WAL is set once per file, by
    # Database.open(): it persists in the file.
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
    and SELECT).
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


def _scoped_owner(scope: str) -> Callable[[ServerCallContext], str]:
    def owner(context: ServerCallContext) -> str:
        return f"{scope}:{resolve_user_scope(context)}"

    return owner


class Database:
    """The database of one process: opened in its event loop, closed on shutdown (``async with``)."""

    def __init__(self, url: str | None = None, *, pool_size: int = 5) -> None:
        self.url = DatabaseURL.parse(url or default_database_url())
        self.pool_size = pool_size
        self._engine: AsyncEngine | None = None
        self._opened = False
        self._saver: BaseCheckpointSaver[str] | None = None
        self._closers: list[Any] = []

    @property
    def kind(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.url.kind

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine (created on first use; it connects lazily, in the loop that uses it)."""
        if self._engine is None:
            self._engine = create_engine(self.url, pool_size=self.pool_size)
        return self._engine

    async def open(self) -> "Database":
        """Connect (failing clearly when the database is unreachable) and create the platform's tables.

        Those are ``thread_runs`` and the A2A task tables; the checkpoint tables come with
        :meth:`checkpointer`.
        """
        if self._opened:
            return self
        try:
            if self.url.sqlite_path is not None:
                await enable_wal(self.url.sqlite_path)
            async with self._schema_lock() as conn:
                await conn.run_sync(_create_tables, [*metadata.sorted_tables, *_A2A_TABLES])
        except Exception as exc:
            await self.engine.dispose()
            raise DatabaseUnavailable(f"cannot reach {self.url.describe()}: {describe_error(exc)}") from exc
        self._opened = True
        logger.info("database: %s", self.url.describe())
        return self

    async def checkpointer(self) -> BaseCheckpointSaver[str]:
        """LangGraph's saver on this database (opened once; its tables are created then)."""
        if self._saver is not None:
            return self._saver
        await self.open()
        saver: BaseCheckpointSaver[str]
        try:
            if self.url.kind == "sqlite":
                saver = await self._open_sqlite_saver()
            else:
                saver = await self._open_postgres_saver()
        except Exception as exc:
            raise DatabaseUnavailable(
                f"cannot open the checkpoint store on {self.url.describe()}: {describe_error(exc)}"
            ) from exc
        self._saver = saver
        return saver

    def task_store(
        self, scope: str, *, poll_interval_s: float = 0.5
    ) -> tuple[VersionedDatabaseTaskStore, DatabaseTaskEventStream]:
        """a2a-sdk's clustered task store and event stream for the agent ``scope``.

        Made before the app's event loop runs (the request handler needs them then); :meth:`open` creates
        their tables at start-up.
        """
        store = VersionedDatabaseTaskStore(self.engine, owner_resolver=_scoped_owner(scope))
        stream = DatabaseTaskEventStream(self.engine, poll_interval_s=poll_interval_s)
        return store, stream

    async def aclose(self) -> None:
        """Close every connection this process opened."""
        for close in reversed(self._closers):
            try:
                await close()
            except Exception as exc:  # closing must not hide the shutdown's real outcome
                logger.warning("closing %s: %s", self.url.describe(), describe_error(exc))
        self._closers.clear()
        self._saver = None
        self._opened = False
        if self._engine is not None:
            await self._engine.dispose()

    async def __aenter__(self) -> "Database":
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _open_sqlite_saver(self) -> AsyncSqliteSaver:
        assert self.url.sqlite_path is not None
        conn = await aiosqlite.connect(self.url.sqlite_path, timeout=BUSY_TIMEOUT_S)
        self._closers.append(conn.close)
        await conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        await conn.execute("PRAGMA synchronous=NORMAL")
        saver = AsyncSqliteSaver(conn)
        await saver.setup()  # WAL journal, tables
        return saver

    async def _open_postgres_saver(self) -> AsyncPostgresSaver:
        pool = AsyncConnectionPool(
            self.url.libpq_url,
            connection_class=psycopg.AsyncConnection[DictRow],  # what the row_factory below makes
            min_size=1,
            max_size=self.pool_size,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=False,
            name="checkpoints",
        )
        await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        self._closers.append(pool.close)
        saver = AsyncPostgresSaver(pool)
        async with self._schema_lock():
            await saver.setup()
        return saver

    @asynccontextmanager
    async def _schema_lock(self) -> AsyncIterator[Any]:
        """A connection that holds the schema lock (PostgreSQL: an advisory lock; SQLite: the file lock)."""
        if self.url.kind == "sqlite":
            async with self.engine.begin() as conn:
                yield conn
            return
        # Autocommit: an open transaction here would stall LangGraph's CREATE INDEX CONCURRENTLY too.
        async with self.engine.connect() as raw:
            conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
            # Try, never wait inside the server: a waiting statement would in turn stall the lock holder's
            # CREATE INDEX CONCURRENTLY, which waits for every running statement (a deadlock the server
            # cannot see).
            while not (
                await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
            ).scalar():
                await asyncio.sleep(0.1)
            try:
                yield conn
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _SCHEMA_LOCK_KEY})
