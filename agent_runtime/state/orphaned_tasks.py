"""End A2A tasks whose replica died mid-task: recorded ``failed``, so no task stays ``working`` for ever.

A replica that runs a task bounds it by its time limit and writes how it ended. A replica that dies
(killed, out of memory, its node gone) writes nothing: its task would stay ``submitted`` or ``working``
in the shared store, and a caller that reads or follows it (``tasks/get``, ``tasks/subscribe``) would
wait for ever. So each replica of an A2A app looks, every ``interval_s``, for its agent's open tasks that
nothing was written to for longer than any live task can last (``stale_after_s``: the task time limit
plus the shutdown margin), and records each ``failed`` with a message that says what happened. The
write goes through the versioned store (compare-and-swap, and an event for the task's followers on every
replica): a task some replica wrote to meanwhile is left alone, and two replicas sweeping at once fail a
task once.
"""

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

from a2a.server.cluster import ConcurrentTaskModificationError, VersionedDatabaseTaskStore
from a2a.server.context import ServerCallContext
from a2a.server.models import TaskModel
from a2a.types import Message, Part, Role, TaskState, TaskStatus, TaskStatusUpdateEvent
from sqlalchemy import String, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_runtime.state.database import OWNER_OF_RECORD

logger = logging.getLogger(__name__)

ORPHAN_CHECK_INTERVAL_S = 60.0
ORPHANED_MESSAGE = (
    "The replica running this task stopped before the task finished; its answer is lost. "
    "Send the message again."
)
_OPEN_STATES = (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING)


async def fail_orphaned_tasks(
    store: VersionedDatabaseTaskStore,
    engine: AsyncEngine,
    scope: str,
    stale_after_s: float,
    *,
    now: datetime | None = None,
) -> list[str]:
    """Record ``failed`` every open task of agent ``scope`` untouched for ``stale_after_s``; their ids."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=stale_after_s)
    status_text = cast(TaskModel.status, String)  # JSON as text: the same filter on SQLite and PostgreSQL
    query = select(TaskModel.id, TaskModel.owner).where(
        TaskModel.owner.startswith(f"{scope}:", autoescape=True),
        TaskModel.last_updated < cutoff.replace(tzinfo=None),  # stored naive, in UTC
        or_(*(status_text.contains(TaskState.Name(state)) for state in _OPEN_STATES)),
    )
    async with engine.connect() as conn:
        candidates = (await conn.execute(query)).all()
    failed: list[str] = []
    for task_id, owner in candidates:
        context = ServerCallContext(state={OWNER_OF_RECORD: owner})
        stored = await store.get(task_id, context)
        if stored is None or stored.task.status.state not in _OPEN_STATES:
            continue  # the text matched elsewhere (a message), or it ended since the query
        task = stored.task
        status = TaskStatus(
            state=TaskState.TASK_STATE_FAILED,
            message=Message(
                role=Role.ROLE_AGENT,
                message_id=uuid.uuid4().hex,
                task_id=task.id,
                context_id=task.context_id,
                parts=[Part(text=ORPHANED_MESSAGE)],
            ),
        )
        status.timestamp.GetCurrentTime()
        task.status.CopyFrom(status)
        event = TaskStatusUpdateEvent(task_id=task.id, context_id=task.context_id, status=status)
        try:
            await store.save(task, event=event, prev_version=stored.version, context=context)
        except ConcurrentTaskModificationError:
            continue  # written meanwhile (another sweeper, or the task was alive after all)
        failed.append(task_id)
    if failed:
        logger.warning(
            "A2A tasks of %r left open by a replica that stopped, now failed: %s", scope, ", ".join(failed)
        )
    return failed


async def fail_orphaned_tasks_periodically(
    store: VersionedDatabaseTaskStore,
    engine: AsyncEngine,
    scope: str,
    stale_after_s: float,
    interval_s: float = ORPHAN_CHECK_INTERVAL_S,
) -> None:
    """:func:`fail_orphaned_tasks` every ``interval_s`` (an A2A app's background task on a database)."""
    while True:
        try:
            await fail_orphaned_tasks(store, engine, scope, stale_after_s)
        except Exception:
            logger.exception("looking for orphaned A2A tasks failed; retrying in %.0fs", interval_s)
        await asyncio.sleep(interval_s)
