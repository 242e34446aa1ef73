"""Conversations kept as one JSON document per thread, for frameworks that serialize their own session.

LangGraph agents keep their memory in LangGraph's checkpoint tables (:mod:`agent_runtime.state.database`).
A framework that hands out its session state as a JSON-able dict instead (Microsoft Agent Framework's
``AgentSession.to_dict()``) stores it here: table ``agent_sessions``, one row per thread key
(``"<agent>/<thread_id>"``, :func:`agent_runtime.state.database.thread_key`), written after every run
that finished, so a thread survives a replica restart and is shared by every replica of the agent.

:class:`SessionDocuments` is the seam; :class:`LocalSessionDocuments` keeps them in this process (no
database), :class:`DatabaseSessionDocuments` in the platform database (SQLite or PostgreSQL). One run
per thread at a time is the chat app's lease (:mod:`agent_runtime.state.leases`), so a write never
races another run's write of the same thread.
"""

import abc
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Float, MetaData, String, Table, Text, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_runtime.state.database import Database
from platform_core.sql import create_schema

metadata = MetaData()

agent_sessions = Table(
    "agent_sessions",
    metadata,
    Column("thread_key", String(255), primary_key=True),
    Column("document", Text, nullable=False),  # the framework's session, as JSON
    Column("updated_at", Float, nullable=False),  # unix time (seconds)
)


@dataclass(frozen=True)
class StoredSession:
    """One thread's stored session: the framework's document and when it was last written."""

    document: dict[str, Any]
    """What the framework serialized (for MAF: ``AgentSession.to_dict()``)."""
    updated_at: float
    """Unix time of the last write."""


class SessionDocuments(abc.ABC):
    """Where an agent's session documents live; keys are thread keys (``"<agent>/<thread_id>"``)."""

    @abc.abstractmethod
    async def get(self, key: str) -> StoredSession | None:
        """The stored session of ``key``, or ``None``."""

    @abc.abstractmethod
    async def put(self, key: str, document: dict[str, Any]) -> None:
        """Store ``document`` under ``key`` (replacing what was there)."""

    @abc.abstractmethod
    async def delete(self, key: str) -> bool:
        """Forget ``key``; ``False`` when nothing was stored."""


class LocalSessionDocuments(SessionDocuments):
    """Session documents in this process (no database): lost when it stops."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[str, float]] = {}

    async def get(self, key: str) -> StoredSession | None:
        """A fresh copy of the stored document (callers may change it)."""
        row = self._rows.get(key)
        return None if row is None else StoredSession(json.loads(row[0]), row[1])

    async def put(self, key: str, document: dict[str, Any]) -> None:
        """Store a JSON copy (so it holds exactly what the database would)."""
        self._rows[key] = (json.dumps(document), time.time())

    async def delete(self, key: str) -> bool:
        """Drop ``key``."""
        return self._rows.pop(key, None) is not None


class DatabaseSessionDocuments(SessionDocuments):
    """Session documents in the platform database's ``agent_sessions`` table (created when first used)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._ready = False

    async def open(self) -> None:
        """Create the ``agent_sessions`` table (idempotent); ``DatabaseUnavailable`` when unreachable."""
        if not self._ready:
            await create_schema(self.database.url, self.database.engine, [agent_sessions])
            self._ready = True

    async def _engine(self) -> AsyncEngine:
        await self.open()
        return self.database.engine

    async def get(self, key: str) -> StoredSession | None:
        """The row of ``key``, decoded."""
        engine = await self._engine()
        query = select(agent_sessions.c.document, agent_sessions.c.updated_at).where(
            agent_sessions.c.thread_key == key
        )
        async with engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else StoredSession(json.loads(row.document), row.updated_at)

    async def put(self, key: str, document: dict[str, Any]) -> None:
        """Update the row, or insert it when there is none (a concurrent insert turns into an update)."""
        engine = await self._engine()
        values = {"document": json.dumps(document), "updated_at": time.time()}
        change = update(agent_sessions).where(agent_sessions.c.thread_key == key).values(**values)
        async with engine.begin() as conn:
            if (await conn.execute(change)).rowcount:
                return
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(agent_sessions).values(thread_key=key, **values))
        except IntegrityError:  # inserted meanwhile
            async with engine.begin() as conn:
                await conn.execute(change)

    async def delete(self, key: str) -> bool:
        """Delete the row of ``key``."""
        engine = await self._engine()
        async with engine.begin() as conn:
            result = await conn.execute(delete(agent_sessions).where(agent_sessions.c.thread_key == key))
        return bool(result.rowcount)
