"""LangGraph's SQLite checkpointer, made to ride out a busy database file instead of ending the run.

Every replica of every app shares one SQLite file, and SQLite has one write lock per file. A writer waits
up to the busy timeout for it, then gets ``database is locked``. The thread leases already treat that as
"try again"; for the checkpointer it was the end of the run (its turn not saved), though the lock is
almost always free again moments later (seen in CI: all writers stalled ~28 s on two cores under a
roll-out, one checkpoint write gave up 0.5 s before the lock came free).

:class:`PatientSqliteSaver` retries a write that found the file locked (the statements are
``INSERT OR REPLACE`` / ``DELETE``: repeating them is harmless) with backoff, for up to ``patience_s`` in
all, rolling back the failed attempt's open transaction first; every other error is raised as before.
"""

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiosqlite
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from platform_core.backoff import Backoff

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How long, in all, a checkpoint write keeps trying a locked file (each try waits the busy timeout).
DEFAULT_PATIENCE_S = 120.0


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "the file is locked by another writer" (worth another try)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    message = str(exc).lower()
    return "database is locked" in message or "database is busy" in message


class PatientSqliteSaver(AsyncSqliteSaver):
    """``AsyncSqliteSaver`` whose writes retry ``database is locked`` for up to ``patience_s``."""

    def __init__(self, conn: aiosqlite.Connection, *, patience_s: float = DEFAULT_PATIENCE_S) -> None:
        super().__init__(conn)
        self.patience_s = patience_s

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save a checkpoint (retried while the file is locked)."""
        put = super().aput
        return await self._patiently(
            "checkpoint write", lambda: put(config, checkpoint, metadata, new_versions)
        )

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Save a step's pending writes (retried while the file is locked)."""
        put_writes = super().aput_writes
        await self._patiently("pending writes", lambda: put_writes(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete a thread's checkpoints and writes (retried while the file is locked)."""
        delete = super().adelete_thread
        await self._patiently("thread delete", lambda: delete(thread_id))

    async def _patiently(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        started = time.monotonic()
        deadline = started + self.patience_s
        backoff = Backoff(initial_s=0.1, max_s=2.0)
        while True:
            try:
                result = await attempt()
            except sqlite3.OperationalError as exc:
                if not is_locked(exc):
                    raise
                await self._roll_back()
                delay = backoff.next_delay()
                if time.monotonic() + delay > deadline:
                    raise
                logger.warning(
                    "%s: the database file is locked (%s); trying again in %.1fs (%.0fs so far)",
                    what,
                    exc,
                    delay,
                    time.monotonic() - started,
                )
                await asyncio.sleep(delay)
                continue
            if backoff.failures:
                logger.warning(
                    "%s: saved after %.1fs of a locked database file", what, time.monotonic() - started
                )
            return result

    async def _roll_back(self) -> None:
        # The failed statement may have left the driver's implicit transaction open: end it, so the next
        # attempt starts clean and this connection holds no lock meanwhile.
        async with self.lock:
            try:
                await self.conn.rollback()
            except sqlite3.Error as exc:
                logger.debug("rollback after a locked write: %s", exc)
