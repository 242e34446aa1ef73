"""The platform's one database: conversations (LangGraph checkpoints), A2A tasks and thread leases.

``DATABASE_URL`` picks the store for every app; unset, it is an embedded SQLite file
``<DATA_DIR>/agents.db``:

- ``sqlite:///relative/or/absolute.db`` (``sqlite:////abs/path.db`` also works): one file that several
  replicas on one machine share safely (WAL journal, a busy timeout so concurrent writers wait instead
  of failing). Local disks only: SQLite's locking does not hold over network file systems.
- ``postgresql://user:password@host:5432/db`` (``postgres://`` too, libpq query options such as
  ``sslmode`` included): the store for replicas on several machines. LangGraph's ``AsyncPostgresSaver``
  runs on a ``psycopg_pool`` pool, everything else on a SQLAlchemy engine over ``asyncpg``.

URLs, engines and schema creation are the platform's shared plumbing (:mod:`platform_core.sql`, also
used by :mod:`identity`); their names stay importable from here.

Each process (a Serve replica, the retention command) opens its own :class:`Database` inside its event
loop and closes it on shutdown. Schemas are created idempotently when opened; with PostgreSQL under an
advisory lock, so replicas starting together do not race on ``CREATE TABLE``.

Tables (LangGraph's and a2a-sdk's own, plus ``thread_runs``; :mod:`identity` adds its own):

- ``checkpoints``, ``writes`` (SQLite) / ``checkpoints``, ``checkpoint_blobs``, ``checkpoint_writes``,
  ``checkpoint_migrations`` (PostgreSQL): agent memory, keyed by ``"<agent>/<thread_id>"``
  (:func:`thread_key`), so agents sharing the database never share a conversation;
- ``tasks``, ``task_versions``, ``task_events``: A2A tasks (a2a-sdk's clustered task store: versioned
  writes, so a cancel recorded by one replica is never overwritten by the replica running the task);
  the owner column is ``"<agent>:<user>"``, so an A2A app only sees its own agent's tasks;
- ``thread_runs``: which run holds a thread right now (:mod:`agent_runtime.state.leases`).
"""

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import aiosqlite
import psycopg
from a2a.server.cluster import DatabaseTaskEventStream, VersionedDatabaseTaskStore
from a2a.server.context import ServerCallContext
from a2a.server.models import TaskEventModel, TaskModel, TaskVersionModel
from a2a.server.owner_resolver import resolve_user_scope
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Column, Float, MetaData, String, Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agent_runtime.state.sqlite_saver import PatientSqliteSaver
from platform_core.errors import describe_error

# The generic part (URLs, engines, SQLite settings, schema creation) lives in platform_core.sql, shared
# with identity; these names stay importable from here.
from platform_core.sql import BUSY_TIMEOUT_S as BUSY_TIMEOUT_S
from platform_core.sql import CONNECT_TIMEOUT_S as CONNECT_TIMEOUT_S
from platform_core.sql import SQLITE_FILE_NAME as SQLITE_FILE_NAME
from platform_core.sql import DatabaseUnavailable as DatabaseUnavailable
from platform_core.sql import DatabaseURL as DatabaseURL
from platform_core.sql import create_engine as create_engine
from platform_core.sql import create_schema, reads_only, schema_lock
from platform_core.sql import default_database_url as default_database_url
from platform_core.sql import enable_wal as enable_wal
from platform_core.sql import single_statements as single_statements

logger = logging.getLogger(__name__)

metadata = MetaData()

thread_runs = Table(
    "thread_runs",
    metadata,
    Column("thread_key", String(255), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("replica", String(255), nullable=False),
    Column("expires_at", Float, nullable=False),  # unix time (seconds)
)


# How long the checkpointer's pool keeps retrying a lost connection in the background (see above).
RECONNECT_TIMEOUT_S = 10.0

_A2A_TABLES = [cast(Table, model.__table__) for model in (TaskModel, TaskVersionModel, TaskEventModel)]


def thread_key(agent: str, thread_id: str) -> str:
    """The key of an agent's conversation in the shared store (thread ids cannot contain ``/``)."""
    return f"{agent}/{thread_id}"


# ServerCallContext.state key naming a task's stored owner outright: for the platform's own writes to
# tasks of any caller (agent_runtime.state.orphaned_tasks). a2a-sdk never puts request data under it.
OWNER_OF_RECORD = "platform.owner_of_record"


def _scoped_owner(scope: str) -> Callable[[ServerCallContext], str]:
    def owner(context: ServerCallContext) -> str:
        recorded = context.state.get(OWNER_OF_RECORD)
        if isinstance(recorded, str):
            return recorded
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
        await create_schema(self.url, self.engine, [*metadata.sorted_tables, *_A2A_TABLES])
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
        # The stream only reads (the store writes its events): its polls must not take the write lock.
        # Its table is created with the store's, under the schema lock (create_table=False).
        stream = DatabaseTaskEventStream(
            reads_only(self.engine), create_table=False, poll_interval_s=poll_interval_s
        )
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

    async def _open_sqlite_saver(self) -> PatientSqliteSaver:
        assert self.url.sqlite_path is not None
        conn = await aiosqlite.connect(self.url.sqlite_path, timeout=BUSY_TIMEOUT_S)
        self._closers.append(conn.close)
        await conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        await conn.execute("PRAGMA synchronous=NORMAL")
        saver = PatientSqliteSaver(conn)  # its writes ride out a briefly locked file
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
            # A connection is checked before it is lent: after a database restart the pool's old ones are
            # dead, and the first run to draw one would fail (the SQLAlchemy engine pre-pings likewise).
            check=AsyncConnectionPool.check_connection,
            # The pool reconnects in the background with a backoff that doubles without a cap: after a
            # minute's outage its next try could be a minute after the database is back. Giving up within
            # seconds instead lets the next run that needs a connection start a fresh attempt at once.
            reconnect_timeout=RECONNECT_TIMEOUT_S,
        )
        await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        self._closers.append(pool.close)
        saver = AsyncPostgresSaver(pool)
        async with self._schema_lock():
            await saver.setup()
        return saver

    @asynccontextmanager
    async def _schema_lock(self) -> AsyncIterator[AsyncConnection]:
        """A connection that holds the schema lock (:func:`platform_core.sql.schema_lock`)."""
        async with schema_lock(self.engine) as conn:
            yield conn
