"""A2A tasks left open by a replica that died are recorded ``failed``; live and ended tasks are not."""

import uuid
from datetime import UTC, datetime, timedelta

from a2a.helpers import get_message_text
from a2a.server.cluster import TaskVersion
from a2a.server.context import ServerCallContext
from a2a.server.models import TaskEventModel
from a2a.types import Task, TaskState, TaskStatus
from sqlalchemy import func, select

from agent_runtime.state.database import Database
from agent_runtime.state.orphaned_tasks import ORPHANED_MESSAGE, fail_orphaned_tasks
from tests.support.persistence import database_fixtures

postgres_url, database_url = database_fixtures()

STALE_AFTER_S = 3600.0


async def _save(db: Database, scope: str, state: TaskState, age: timedelta) -> str:
    store, _ = db.task_store(scope)
    status = TaskStatus(state=state)
    status.timestamp.FromDatetime(datetime.now(UTC) - age)
    task = Task(id=str(uuid.uuid4()), context_id=f"ctx-{uuid.uuid4().hex[:8]}", status=status)
    context = ServerCallContext()
    await store.save(task, event=None, prev=None, prev_version=TaskVersion.MISSING, context=context)
    return task.id


async def _events(db: Database, task_id: str) -> int:
    async with db.engine.connect() as conn:
        query = select(func.count()).select_from(TaskEventModel).where(TaskEventModel.task_id == task_id)
        return int((await conn.execute(query)).scalar_one())


async def test_open_tasks_untouched_past_any_live_task_are_failed_once(database_url: str) -> None:
    scope = f"weather{uuid.uuid4().hex[:6]}"  # PostgreSQL tests of the module share a database
    old, recent = timedelta(hours=2), timedelta(minutes=5)
    async with Database(database_url) as db:
        store, _ = db.task_store(scope)
        ids = {
            "working, old": await _save(db, scope, TaskState.TASK_STATE_WORKING, old),
            "submitted, old": await _save(db, scope, TaskState.TASK_STATE_SUBMITTED, old),
            "working, recent": await _save(db, scope, TaskState.TASK_STATE_WORKING, recent),
            "completed, old": await _save(db, scope, TaskState.TASK_STATE_COMPLETED, old),
            "input required, old": await _save(db, scope, TaskState.TASK_STATE_INPUT_REQUIRED, old),
            "another agent's": await _save(db, scope + "x", TaskState.TASK_STATE_WORKING, old),
        }
        failed = await fail_orphaned_tasks(store, db.engine, scope, STALE_AFTER_S)
        assert set(failed) == {ids["working, old"], ids["submitted, old"]}

        states = {}
        for name, task_id in ids.items():
            owner_scope = scope + "x" if name == "another agent's" else scope
            stored = await db.task_store(owner_scope)[0].get(task_id, ServerCallContext())
            assert stored is not None
            states[name] = stored.task.status.state
            if task_id in failed:
                assert get_message_text(stored.task.status.message) == ORPHANED_MESSAGE
                assert await _events(db, task_id) == 1  # followers on every replica see the end
        assert states == {
            "working, old": TaskState.TASK_STATE_FAILED,
            "submitted, old": TaskState.TASK_STATE_FAILED,
            "working, recent": TaskState.TASK_STATE_WORKING,
            "completed, old": TaskState.TASK_STATE_COMPLETED,
            "input required, old": TaskState.TASK_STATE_INPUT_REQUIRED,
            "another agent's": TaskState.TASK_STATE_WORKING,
        }
        assert await fail_orphaned_tasks(store, db.engine, scope, STALE_AFTER_S) == []  # once
