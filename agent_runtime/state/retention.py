"""Delete conversations and A2A tasks nobody touched for a while.

    python -m agent_runtime.state.retention --older-than-days 30 [--dry-run] [--database-url URL]

- a thread goes when its latest checkpoint is older than the cutoff (LangGraph checkpoint ids are
  time-ordered UUIDv6: the id says when it was written); it is deleted through the checkpointer
  (checkpoints, their blobs and pending writes); threads with a run in progress are kept;
- a framework's stored session (``agent_sessions``: Microsoft Agent Framework agents) goes when it was
  last written before the cutoff, unless a run holds its thread;
- an A2A task goes when its status timestamp (``last_updated``) is older than the cutoff, with its
  version row and event log;
- expired ``thread_runs`` claims left by crashed replicas go too.

The same :func:`purge` runs inside the chat apps once an hour when ``RETENTION_DAYS`` is set.
Works on SQLite and PostgreSQL (whatever ``DATABASE_URL`` names).
"""

import argparse
import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from a2a.server.models import TaskEventModel, TaskModel, TaskVersionModel
from sqlalchemy import Column, MetaData, String, Table, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from agent_runtime.state.database import Database, DatabaseUnavailable, thread_runs
from agent_runtime.state.sessions import agent_sessions
from platform_core.sql import create_schema

logger = logging.getLogger(__name__)

# 100-ns intervals between the UUID epoch (1582-10-15) and the Unix epoch.
_UUID_EPOCH_OFFSET = 0x01B21DD213814000
_BATCH = 500
RETENTION_INTERVAL_S = 3600.0

# Only the columns retention reads; LangGraph owns the table (separate metadata: never created here).
_checkpoints = Table("checkpoints", MetaData(), Column("thread_id", String), Column("checkpoint_id", String))


@dataclass(frozen=True)
class RetentionReport:
    """What one :func:`purge` deleted (or, with ``dry_run``, would delete)."""

    cutoff: datetime
    """Anything last written before this went."""
    threads: int
    """Conversations deleted."""
    tasks: int
    """A2A tasks deleted, with their versions and events."""
    sessions: int
    """Stored framework sessions (``agent_sessions``) deleted."""
    expired_claims: int
    """Expired ``thread_runs`` rows deleted (always 0 in a dry run: they are not counted)."""
    dry_run: bool
    """Only counted: nothing was deleted."""


def checkpoint_time(checkpoint_id: str) -> datetime | None:
    """When a LangGraph checkpoint was written, from its UUIDv6 id (``None`` for other ids)."""
    try:
        value = uuid.UUID(checkpoint_id)
    except ValueError:
        return None
    if value.version != 6:
        return None
    ticks = (value.time_low << 28) | (value.time_mid << 12) | (value.time_hi_version & 0x0FFF)
    return datetime.fromtimestamp((ticks - _UUID_EPOCH_OFFSET) / 10_000_000, tz=UTC)


async def purge(
    db: Database, older_than: timedelta, *, dry_run: bool = False, now: datetime | None = None
) -> RetentionReport:
    """Delete (or with ``dry_run`` only count) what is older than ``older_than``."""
    cutoff = (now or datetime.now(UTC)) - older_than
    saver = await db.checkpointer()  # opens the database: every table exists from here on

    await create_schema(db.url, db.engine, [agent_sessions])  # idempotent: MAF agents may never have run

    threads = await _old_threads(db, cutoff)
    tasks = await _old_tasks(db, cutoff)
    sessions = await _old_sessions(db, cutoff)
    claims = 0
    if not dry_run:
        for key in threads:
            await saver.adelete_thread(key)
        await _delete_tasks(db, tasks)
        await _delete_sessions(db, sessions)
        claims = await _delete_expired_claims(db)
    report = RetentionReport(cutoff, len(threads), len(tasks), len(sessions), claims, dry_run)
    logger.info(
        "retention (%s, older than %s): %s %d threads, %d sessions, %d A2A tasks%s",
        db.url.describe(),
        cutoff.isoformat(timespec="seconds"),
        "would delete" if dry_run else "deleted",
        report.threads,
        report.sessions,
        report.tasks,
        "" if dry_run else f", {claims} expired run claims",
    )
    return report


async def _old_threads(db: Database, cutoff: datetime) -> list[str]:
    latest = func.max(_checkpoints.c.checkpoint_id)
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(select(_checkpoints.c.thread_id, latest).group_by(_checkpoints.c.thread_id))
        ).all()
        busy = await _busy_threads(conn)
    old = []
    for thread_id, checkpoint_id in rows:
        written = checkpoint_time(checkpoint_id)
        if written is None:
            logger.warning("thread %s: checkpoint id %r carries no time; kept", thread_id, checkpoint_id)
        elif written < cutoff and thread_id not in busy:
            old.append(thread_id)
    return old


async def _busy_threads(conn: AsyncConnection) -> set[str]:
    rows = await conn.execute(select(thread_runs.c.thread_key).where(thread_runs.c.expires_at >= time.time()))
    return set(rows.scalars())


async def _old_sessions(db: Database, cutoff: datetime) -> list[str]:
    async with db.engine.connect() as conn:
        keys = await conn.execute(
            select(agent_sessions.c.thread_key).where(agent_sessions.c.updated_at < cutoff.timestamp())
        )
        old = list(keys.scalars())
        busy = await _busy_threads(conn)
    return [key for key in old if key not in busy]


async def _delete_sessions(db: Database, keys: Sequence[str]) -> None:
    for start in range(0, len(keys), _BATCH):
        async with db.engine.begin() as conn:
            batch = keys[start : start + _BATCH]
            await conn.execute(delete(agent_sessions).where(agent_sessions.c.thread_key.in_(batch)))


async def _old_tasks(db: Database, cutoff: datetime) -> list[str]:
    naive_cutoff = cutoff.astimezone(UTC).replace(tzinfo=None)  # a2a-sdk stores naive UTC
    async with db.engine.connect() as conn:
        result = await conn.execute(select(TaskModel.id).where(TaskModel.last_updated < naive_cutoff))
        return list(result.scalars())


async def _delete_tasks(db: Database, task_ids: Sequence[str]) -> None:
    for start in range(0, len(task_ids), _BATCH):
        batch = task_ids[start : start + _BATCH]
        async with db.engine.begin() as conn:
            for model in (TaskEventModel, TaskVersionModel):
                await conn.execute(delete(model).where(model.task_id.in_(batch)))
            await conn.execute(delete(TaskModel).where(TaskModel.id.in_(batch)))


async def _delete_expired_claims(db: Database) -> int:
    async with db.engine.begin() as conn:
        result = await conn.execute(delete(thread_runs).where(thread_runs.c.expires_at < time.time()))
    return result.rowcount or 0


async def run_periodically(
    db: Database, older_than: timedelta, interval_s: float = RETENTION_INTERVAL_S
) -> None:
    """:func:`purge` every ``interval_s`` (a chat app's background task while ``RETENTION_DAYS`` is set)."""
    while True:
        try:
            await purge(db, older_than)
        except Exception:
            logger.exception("periodic retention failed; retrying in %.0fs", interval_s)
        await asyncio.sleep(interval_s)


def main(argv: list[str] | None = None) -> int:
    """The retention command (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--older-than-days", type=float, required=True, help="age limit in days (> 0)")
    parser.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    parser.add_argument("--database-url", default=None, help="default: DATABASE_URL, else the SQLite file")
    args = parser.parse_args(argv)
    if args.older_than_days <= 0:
        parser.error("--older-than-days must be > 0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    async def run() -> None:
        async with Database(args.database_url) as db:
            await purge(db, timedelta(days=args.older_than_days), dry_run=args.dry_run)

    try:
        asyncio.run(run())
    except (DatabaseUnavailable, ValueError) as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
