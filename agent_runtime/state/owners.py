"""Who owns each conversation: the principal whose request created it (auth on).

Table ``thread_owners``: one row per thread key (``"<agent>/<thread_id>"``), written by the run that
starts the thread. The chat app answers another principal's read, continue or delete with the same 404
as for a thread that does not exist (no leak that it does); ``admin`` reaches every thread. With auth
off nothing is recorded or checked. A thread made while auth was off has no owner: only ``admin``
reaches it once auth is on.

:class:`LocalThreadOwners` keeps owners in this process (an app without a database),
:class:`DatabaseThreadOwners` in the platform database, shared by every replica and agent.
"""

import abc
import time

from sqlalchemy import Column, Float, MetaData, String, Table, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_runtime.state.database import Database
from platform_core.sql import create_schema, single_statements

metadata = MetaData()

thread_owners = Table(
    "thread_owners",
    metadata,
    Column("thread_key", String(255), primary_key=True),
    Column("owner_id", String(192), nullable=False),
    Column("created_at", Float, nullable=False),  # unix time (seconds)
)


class ThreadOwners(abc.ABC):
    """The owners of an agent's threads, by thread key."""

    @abc.abstractmethod
    async def claim(self, key: str, owner_id: str) -> str:
        """Make ``owner_id`` the owner of ``key`` unless it has one; returns the owner it has now."""

    @abc.abstractmethod
    async def owner(self, key: str) -> str | None:
        """The owner of ``key``, or ``None``."""

    @abc.abstractmethod
    async def forget(self, key: str) -> None:
        """Drop the owner of ``key`` (its thread was deleted)."""


class LocalThreadOwners(ThreadOwners):
    """Owners in this process (no database)."""

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}

    async def claim(self, key: str, owner_id: str) -> str:
        """The existing owner, else ``owner_id``."""
        return self._owners.setdefault(key, owner_id)

    async def owner(self, key: str) -> str | None:
        """The owner of ``key``."""
        return self._owners.get(key)

    async def forget(self, key: str) -> None:
        """Drop ``key``."""
        self._owners.pop(key, None)


class DatabaseThreadOwners(ThreadOwners):
    """Owners in the platform database's ``thread_owners`` table (created when first used)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._ready = False

    async def _engine(self) -> AsyncEngine:
        if not self._ready:
            await create_schema(self.database.url, self.database.engine, [thread_owners])
            self._ready = True
        return self.database.engine

    async def claim(self, key: str, owner_id: str) -> str:
        """One insert that loses to an existing row (two replicas claiming at once: one wins), then a read."""
        engine = await self._engine()
        insert = sqlite_insert if engine.dialect.name == "sqlite" else postgresql_insert
        row = {"thread_key": key, "owner_id": owner_id, "created_at": time.time()}
        async with single_statements(engine) as conn:
            await conn.execute(insert(thread_owners).values(**row).on_conflict_do_nothing())
            owner = await conn.scalar(
                select(thread_owners.c.owner_id).where(thread_owners.c.thread_key == key)
            )
        return str(owner)

    async def owner(self, key: str) -> str | None:
        """The row's owner."""
        engine = await self._engine()
        async with single_statements(engine) as conn:
            owner = await conn.scalar(
                select(thread_owners.c.owner_id).where(thread_owners.c.thread_key == key)
            )
        return None if owner is None else str(owner)

    async def forget(self, key: str) -> None:
        """Delete the row."""
        engine = await self._engine()
        async with single_statements(engine) as conn:
            await conn.execute(delete(thread_owners).where(thread_owners.c.thread_key == key))
