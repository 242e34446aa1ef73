"""The SQLite checkpointer rides out a file another process holds locked longer than the busy timeout."""

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from langchain_core.messages import HumanMessage

from agent_runtime.state.database import Database
from agent_runtime.state.sqlite_saver import PatientSqliteSaver, is_locked
from agent_runtime.state.threads import read_thread
from tests.support.persistence import put_checkpoint

BUSY_TIMEOUT_MS = 100  # each try gives up after this; the lock below is held several times as long


@pytest.fixture
async def saver(tmp_path: Path) -> AsyncIterator[PatientSqliteSaver]:
    async with Database(f"sqlite:///{tmp_path / 'agents.db'}") as db:
        await db.checkpointer()  # the file in WAL mode, the tables made
    conn = await aiosqlite.connect(tmp_path / "agents.db")
    await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    saver = PatientSqliteSaver(conn, patience_s=10)
    await saver.setup()
    try:
        yield saver
    finally:
        await conn.close()


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another process's writer, in the middle of a transaction (the file's one write lock held)."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def test_a_checkpoint_write_waits_out_a_lock_held_past_the_busy_timeout(
    saver: PatientSqliteSaver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = hold_write_lock(tmp_path / "agents.db")
    asyncio.get_running_loop().call_later(0.8, other.commit)  # 8 busy timeouts later
    with caplog.at_level(logging.WARNING, logger="agent_runtime.state.sqlite_saver"):
        await put_checkpoint(saver, "weather/t1", messages=[HumanMessage("Weather in Paris?")])
    other.close()

    view = await read_thread(saver, "weather/t1", "t1")
    assert view is not None and [m.content for m in view.messages] == ["Weather in Paris?"]
    said = [r.getMessage() for r in caplog.records]
    assert any("the database file is locked" in line for line in said)
    assert any(line.startswith("checkpoint write: saved after") for line in said)


async def test_pending_writes_and_deletes_wait_too(saver: PatientSqliteSaver, tmp_path: Path) -> None:
    await put_checkpoint(saver, "weather/t2", messages=[HumanMessage("hi")])
    stored = await saver.aget_tuple({"configurable": {"thread_id": "weather/t2", "checkpoint_ns": ""}})
    assert stored is not None

    other = hold_write_lock(tmp_path / "agents.db")
    asyncio.get_running_loop().call_later(0.5, other.commit)
    await saver.aput_writes(stored.config, [("messages", [HumanMessage("more")])], task_id="task-1")
    assert (await saver.aget_tuple(stored.config)).pending_writes  # type: ignore[union-attr]

    other.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(0.5, other.commit)
    await saver.adelete_thread("weather/t2")
    other.close()
    assert await read_thread(saver, "weather/t2", "t2") is None


async def test_past_its_patience_the_write_fails_with_sqlites_error(
    saver: PatientSqliteSaver, tmp_path: Path
) -> None:
    saver.patience_s = 0.5
    other = hold_write_lock(tmp_path / "agents.db")
    try:
        with pytest.raises(sqlite3.OperationalError) as caught:
            await put_checkpoint(saver, "weather/t3", messages=[HumanMessage("hi")])
        assert is_locked(caught.value)
    finally:
        other.rollback()
        other.close()
    # The failed tries left no transaction open: the next write goes through at once.
    await put_checkpoint(saver, "weather/t3", messages=[HumanMessage("again")])
    view = await read_thread(saver, "weather/t3", "t3")
    assert view is not None and [m.content for m in view.messages] == ["again"]


async def test_other_errors_are_not_retried(saver: PatientSqliteSaver) -> None:
    await saver.conn.execute("DROP TABLE checkpoints")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await put_checkpoint(saver, "weather/t4")


async def test_the_platform_database_opens_the_patient_saver(tmp_path: Path) -> None:
    async with Database(f"sqlite:///{tmp_path / 'x.db'}") as db:
        assert isinstance(await db.checkpointer(), PatientSqliteSaver)
