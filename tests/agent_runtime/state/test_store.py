"""The database layer on both backends: opening (and failing clearly), checkpointers shared by two
processes' worth of connections, thread leases across replicas, and retention (function and command).
(URLs and engines: tests/platform_core/test_sql.py.)"""

import asyncio
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from a2a.server.cluster import TaskVersion
from a2a.server.context import ServerCallContext
from a2a.server.tasks.database_task_store import DatabaseTaskStore
from a2a.types import Task, TaskState, TaskStatus
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from sqlalchemy import event, select, update

from agent_runtime.state.database import Database, DatabaseUnavailable, thread_runs
from agent_runtime.state.leases import ThreadBusy, ThreadLeases
from agent_runtime.state.retention import checkpoint_time, purge
from agent_runtime.state.sessions import DatabaseSessionDocuments, agent_sessions
from agent_runtime.state.threads import read_thread
from tests.support.paths import REPO_ROOT
from tests.support.persistence import database_fixtures, put_checkpoint, uuid6_at
from tests.support.servers import free_port

ROOT = REPO_ROOT
postgres_url, database_url = database_fixtures()


# --- opening ------------------------------------------------------------------------------------------


async def test_unreachable_postgres_fails_clearly_without_the_password() -> None:
    port = free_port()
    db = Database(f"postgresql://agent:s3cret@127.0.0.1:{port}/agents")
    with pytest.raises(DatabaseUnavailable) as caught:
        await db.open()
    message = str(caught.value)
    assert message.startswith(f"cannot reach PostgreSQL at 127.0.0.1:{port}/agents: ")
    assert "s3cret" not in message and "agent:" not in message


# --- checkpointers ------------------------------------------------------------------------------------


async def test_checkpointer_is_the_backends_saver_and_opening_is_idempotent(database_url: str) -> None:
    replicas = [Database(database_url), Database(database_url)]
    try:
        # Two replicas starting together both create the schema without tripping over each other.
        savers = await asyncio.gather(*(db.checkpointer() for db in replicas))
        expected = AsyncSqliteSaver if database_url.startswith("sqlite") else AsyncPostgresSaver
        assert all(isinstance(saver, expected) for saver in savers)
        assert await replicas[0].checkpointer() is savers[0]
    finally:
        for db in replicas:
            await db.aclose()


async def test_a_thread_written_by_one_replica_is_read_and_deleted_by_another(database_url: str) -> None:
    key = f"tester/{uuid.uuid4().hex}"
    messages = [
        HumanMessage("Weather in Paris?"),
        AIMessage("", tool_calls=[{"id": "c1", "name": "forecast", "args": {"city": "Paris"}}]),
        ToolMessage("sunny", tool_call_id="c1", name="forecast"),
        ToolMessage("boom", tool_call_id="c2", name="alerts", status="error"),
        AIMessage("Sunny in Paris."),
    ]
    async with Database(database_url) as first, Database(database_url) as second:
        await put_checkpoint(await first.checkpointer(), key, messages=messages)
        view = await read_thread(await second.checkpointer(), key, "t1")
        assert view is not None and view.thread_id == "t1" and view.updated_at is not None
        shown = [m.model_dump(exclude_none=True) for m in view.messages]
        assert shown == [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "c1", "name": "forecast", "args": {"city": "Paris"}}],
            },
            {"role": "tool", "content": "sunny", "name": "forecast", "tool_call_id": "c1", "status": "ok"},
            {"role": "tool", "content": "boom", "name": "alerts", "tool_call_id": "c2", "status": "error"},
            {"role": "assistant", "content": "Sunny in Paris.", "tool_calls": []},
        ]
        await (await second.checkpointer()).adelete_thread(key)
        assert await read_thread(await first.checkpointer(), key, "t1") is None


# --- thread leases ------------------------------------------------------------------------------------


async def test_a_thread_lease_holds_across_replicas_until_released(database_url: str) -> None:
    key = f"tester/{uuid.uuid4().hex}"
    async with Database(database_url) as one, Database(database_url) as two:
        replica_a, replica_b = ThreadLeases(one.engine), ThreadLeases(two.engine)
        lease = await replica_a.acquire(key, "run-a")
        with pytest.raises(ThreadBusy):
            await replica_b.acquire(key, "run-b")
        with pytest.raises(ThreadBusy):
            await replica_a.acquire(key, "run-a2")  # the same replica gets no second run either
        assert await replica_b.holder(key) == "run-a"
        await lease.release()
        await lease.release()  # idempotent
        second = await replica_b.acquire(key, "run-b")
        assert await replica_a.holder(key) == "run-b"
        await second.release()
        assert await replica_a.holder(key) is None


class ManualClock:
    """The wall clock lease rows are written and compared in, moved by the test: a claim expires when
    the test says so, not when a short TTL happens to run out on a busy machine."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def stored_expiry(db: Database, key: str) -> float | None:
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(select(thread_runs.c.expires_at).where(thread_runs.c.thread_key == key))
        ).first()
    return None if row is None else row.expires_at


async def test_a_crashed_replicas_lease_expires_and_its_holder_learns_it_lost(database_url: str) -> None:
    key = f"tester/{uuid.uuid4().hex}"
    clock = ManualClock()
    start = clock.now
    async with Database(database_url) as one, Database(database_url) as two:
        crashed = ThreadLeases(one.engine, ttl_s=30, renew_s=0.1, clock=clock)
        other = ThreadLeases(two.engine, ttl_s=30, renew_s=0.1, clock=clock)
        lease = await crashed.acquire(key, "run-crashed")
        assert await stored_expiry(one, key) == start + 30
        clock.advance(20)
        async with asyncio.timeout(30):  # the holder's renewal moves the expiry on from the new now
            while await stored_expiry(one, key) != start + 50:
                await asyncio.sleep(0.05)
        clock.advance(20)  # past the first expiry, not the renewed one: still held
        with pytest.raises(ThreadBusy):
            await other.acquire(key, "run-other")

        assert lease._renewer is not None
        lease._renewer.cancel()  # the replica dies: nobody renews any more
        await asyncio.gather(lease._renewer, return_exceptions=True)
        clock.advance(31)  # past every expiry it ever wrote (at most now + 30)
        taken = await other.acquire(key, "run-other")
        assert await other.holder(key) == "run-other"

        # A holder that was merely slow finds out at its next renewal that the thread is gone.
        slow = ThreadLeases(one.engine, ttl_s=30, renew_s=0.1, clock=clock)
        slow_lease = await slow.acquire(f"{key}-slow", "run-slow")
        await other.release(f"{key}-slow", "run-slow")  # as if it had expired and been taken
        new = await other.acquire(f"{key}-slow", "run-new")
        await asyncio.wait_for(slow_lease.lost.wait(), timeout=30)
        await slow_lease.release()  # must not free the new holder's claim
        assert await other.holder(f"{key}-slow") == "run-new"
        await new.release()
        await taken.release()


class FailingRenewals:
    """Makes the lease renewals (``UPDATE thread_runs``) of one engine fail while ``failing`` is set, as
    'database is locked' or an unreachable database would; counts the attempts."""

    def __init__(self, db: Database) -> None:
        self.failing = False
        self.attempts = 0
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._before)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.failing and statement.lstrip().upper().startswith("UPDATE THREAD_RUNS"):
            self.attempts += 1
            raise sqlite3.OperationalError("database is locked")

    async def wait_for_attempts(self, count: int) -> None:
        target = self.attempts + count
        async with asyncio.timeout(30):
            while self.attempts < target:
                await asyncio.sleep(0.02)


async def test_failed_renewals_never_lose_the_claim_by_themselves(database_url: str) -> None:
    key = f"tester/{uuid.uuid4().hex}"
    clock = ManualClock()
    async with Database(database_url) as db:
        renewals = FailingRenewals(db)
        # A short ttl_s: the renewals keep failing for longer than it (20 attempts at most 0.1s apart
        # after the first few) without the run losing its claim.
        leases = ThreadLeases(db.engine, ttl_s=1, renew_s=0.1, clock=clock)
        lease = await leases.acquire(key, "run-slow")
        renewals.failing = True
        await renewals.wait_for_attempts(3)
        clock.advance(2)  # its claim expired while renewals failed, and nobody took the thread
        await renewals.wait_for_attempts(20)  # still retrying, still running
        assert not lease.lost.is_set()

        renewals.failing = False  # the database answers again: the next renewal extends the claim
        async with asyncio.timeout(30):
            while await stored_expiry(db, key) != clock.now + 1:
                await asyncio.sleep(0.02)
        assert not lease.lost.is_set()
        assert await leases.holder(key) == "run-slow"
        await lease.release()
        assert await leases.holder(key) is None


async def test_a_claim_taken_over_while_renewals_failed_is_lost_once_the_database_says_so(
    database_url: str,
) -> None:
    key = f"tester/{uuid.uuid4().hex}"
    clock = ManualClock()
    async with Database(database_url) as one, Database(database_url) as two:
        renewals = FailingRenewals(one)
        slow = ThreadLeases(one.engine, ttl_s=30, renew_s=0.1, clock=clock)
        other = ThreadLeases(two.engine, ttl_s=30, renew_s=0.1, clock=clock)
        lease = await slow.acquire(key, "run-slow")
        renewals.failing = True
        await renewals.wait_for_attempts(2)
        clock.advance(31)
        taken = await other.acquire(key, "run-other")  # expired: another run may take it over
        await renewals.wait_for_attempts(2)
        assert not lease.lost.is_set()  # failures alone say nothing

        renewals.failing = False
        await asyncio.wait_for(lease.lost.wait(), timeout=30)  # the renewal matched no row: lost
        await lease.release()  # must not free the new holder's claim
        assert await other.holder(key) == "run-other"
        await taken.release()


async def test_sqlite_lease_reads_and_writes_hold_no_lock_across_turns(tmp_path: Path) -> None:
    """Lease statements commit on their own: a read needs no write lock, so it answers while another
    process holds the file's write lock; a write waits for the lock (busy timeout), then succeeds."""
    path = tmp_path / "agents.db"
    key = f"tester/{uuid.uuid4().hex}"
    async with Database(f"sqlite:///{path}") as db:
        leases = ThreadLeases(db.engine)
        lease = await leases.acquire(key, "run-1")
        writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            writer.execute("BEGIN IMMEDIATE")  # another process's write transaction, in progress
            assert await asyncio.wait_for(leases.holder(key), timeout=20) == "run-1"
            release = asyncio.create_task(lease.release())
            await asyncio.sleep(0.2)
            assert not release.done()  # the DELETE waits for the lock ...
            writer.execute("COMMIT")
            await asyncio.wait_for(release, timeout=20)  # ... and goes through once it is free
        finally:
            writer.close()
        assert await leases.holder(key) is None


async def test_lease_release_completes_even_when_the_caller_is_cancelled(database_url: str) -> None:
    key = f"tester/{uuid.uuid4().hex}"
    async with Database(database_url) as db:
        leases = ThreadLeases(db.engine)
        lease = await leases.acquire(key, "run-1")
        streaming = asyncio.Event()

        async def stream() -> None:  # a chat stream: releases its claim on the way out
            try:
                streaming.set()
                await asyncio.sleep(60)
            finally:
                await lease.release()

        task = asyncio.create_task(stream())
        await streaming.wait()
        task.cancel()  # the client went away ...
        await asyncio.sleep(0)
        task.cancel()  # ... and the cleanup is cancelled too (anyio cancels every await in the scope)
        await asyncio.gather(task, return_exceptions=True)
        async with asyncio.timeout(30):
            while await leases.holder(key) is not None:
                await asyncio.sleep(0.02)


# --- retention ----------------------------------------------------------------------------------------


def test_checkpoint_time_reads_uuid6_ids() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert abs(checkpoint_time(uuid6_at(moment)) - moment) < timedelta(microseconds=1)
    assert checkpoint_time(str(uuid.uuid4())) is None
    assert checkpoint_time("not-a-uuid") is None


async def _age_data(db: Database, tag: str, now: datetime) -> dict[str, str]:
    """An old and a fresh thread, an old and a fresh task; returns their ids."""
    saver = await db.checkpointer()
    ids = {
        "old_thread": f"tester/{tag}-old",
        "new_thread": f"tester/{tag}-new",
        "old_task": str(uuid.uuid4()),
        "new_task": str(uuid.uuid4()),
    }
    long_ago = now - timedelta(days=40)
    await put_checkpoint(saver, ids["old_thread"], long_ago - timedelta(minutes=5))
    await put_checkpoint(saver, ids["old_thread"], long_ago)  # its latest checkpoint is 40 days old
    await put_checkpoint(saver, ids["new_thread"], long_ago)
    await put_checkpoint(saver, ids["new_thread"], now - timedelta(days=1))  # touched yesterday
    store, _ = db.task_store("tester")
    for task_id, moment in ((ids["old_task"], long_ago), (ids["new_task"], now - timedelta(hours=1))):
        status = TaskStatus(state=TaskState.TASK_STATE_COMPLETED)
        status.timestamp.FromDatetime(moment)
        task = Task(id=task_id, context_id=f"ctx-{tag}", status=status)
        await store.save(
            task, event=None, prev=None, prev_version=TaskVersion.MISSING, context=ServerCallContext()
        )
    return ids


async def _exists(db: Database, ids: dict[str, str]) -> dict[str, bool]:
    saver = await db.checkpointer()
    tasks = DatabaseTaskStore(db.engine, owner_resolver=lambda _: "tester:")
    result = {}
    for name, value in ids.items():
        if name.endswith("thread"):
            result[name] = await saver.aget_tuple({"configurable": {"thread_id": value}}) is not None
        else:
            result[name] = await tasks.get(value, ServerCallContext()) is not None
    return result


async def test_retention_deletes_only_what_is_older_than_the_cutoff(database_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    async with Database(database_url) as db:
        ids = await _age_data(db, tag, now)
        dry = await purge(db, timedelta(days=30), dry_run=True)
        assert dry.dry_run and dry.threads >= 1 and dry.tasks >= 1
        assert all((await _exists(db, ids)).values())  # a dry run deletes nothing

        report = await purge(db, timedelta(days=30))
        assert report.threads >= 1 and report.tasks >= 1
        assert await _exists(db, ids) == {
            "old_thread": False,
            "new_thread": True,
            "old_task": False,
            "new_task": True,
        }


async def test_retention_keeps_a_thread_with_a_run_in_progress(database_url: str) -> None:
    key = f"tester/{uuid.uuid4().hex}"
    async with Database(database_url) as db:
        saver = await db.checkpointer()
        await put_checkpoint(saver, key, datetime.now(UTC) - timedelta(days=40))
        lease = await ThreadLeases(db.engine).acquire(key, "run-1")
        await purge(db, timedelta(days=30))
        assert await saver.aget_tuple({"configurable": {"thread_id": key}}) is not None
        await lease.release()
        await purge(db, timedelta(days=30))
        assert await saver.aget_tuple({"configurable": {"thread_id": key}}) is None


async def test_retention_command(database_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    async with Database(database_url) as db:
        ids = await _age_data(db, tag, datetime.now(UTC))

    async def command(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "agent_runtime.state.retention", "--database-url", database_url, *args]
        return await asyncio.to_thread(
            subprocess.run, argv, cwd=ROOT, capture_output=True, text=True, timeout=120
        )

    dry = await command("--older-than-days", "30", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete" in dry.stderr and "threads" in dry.stderr and "A2A tasks" in dry.stderr
    done = await command("--older-than-days", "30")
    assert done.returncode == 0, done.stderr
    assert "deleted" in done.stderr
    async with Database(database_url) as db:
        assert await _exists(db, ids) == {
            "old_thread": False,
            "new_thread": True,
            "old_task": False,
            "new_task": True,
        }

    bad = await command("--older-than-days", "0")
    assert bad.returncode != 0 and "--older-than-days must be > 0" in bad.stderr
    port = free_port()
    unreachable = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "agent_runtime.state.retention",
            "--older-than-days",
            "1",
            "--database-url",
            f"postgresql://u:pw@127.0.0.1:{port}/x",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unreachable.returncode == 1
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}/x" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


async def test_retention_deletes_old_framework_sessions_but_not_a_busy_one(database_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    old, busy, fresh = (f"packing/{tag}-{name}" for name in ("old", "busy", "fresh"))
    async with Database(database_url) as db:
        sessions = DatabaseSessionDocuments(db)
        for key in (old, busy, fresh):
            await sessions.put(key, {"messages": [key]})
        long_ago = time.time() - 40 * 86400
        async with db.engine.begin() as conn:  # written 40 days ago
            await conn.execute(
                update(agent_sessions)
                .where(agent_sessions.c.thread_key.in_([old, busy]))
                .values(updated_at=long_ago)
            )
        lease = await ThreadLeases(db.engine).acquire(busy, "run-1")
        dry = await purge(db, timedelta(days=30), dry_run=True)
        assert dry.sessions >= 1 and await sessions.get(old) is not None  # a dry run deletes nothing
        report = await purge(db, timedelta(days=30))
        assert report.sessions >= 1
        assert await sessions.get(old) is None
        assert await sessions.get(busy) is not None  # its run holds the thread
        assert await sessions.get(fresh) is not None
        await lease.release()
        await purge(db, timedelta(days=30))
        assert await sessions.get(busy) is None
