"""One run per conversation at a time, across every replica: a lease row per busy thread.

A second message on a thread whose run is still going is refused (``409 thread_busy``) instead of
interleaving two runs' writes into one conversation. The claim lives in the shared database
(``thread_runs``: thread key, run id, replica, expiry), so it holds whichever replica a request reaches:

- acquire: ``INSERT``; when the row exists, take it over only if it expired (one conditional ``UPDATE``,
  atomic in SQLite and PostgreSQL);
- while the run goes on, the holder renews the expiry every ``renew_s`` seconds;
- release: delete the row (only while it is still ours);
- a crashed replica stops renewing: its threads free themselves ``ttl_s`` seconds later.

A holder that could not renew in time (database unreachable, a stalled process) may have lost the thread
to another run: :attr:`ThreadLease.lost` is set and the run must stop.
"""

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import and_, delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_runtime.state.database import thread_runs
from platform_core.errors import describe_error

logger = logging.getLogger(__name__)

DEFAULT_TTL_S = 30.0
DEFAULT_RENEW_S = 5.0


class ThreadBusy(Exception):
    """Another run holds the thread."""

    def __init__(self, key: str) -> None:
        super().__init__(f"thread {key!r} has a run in progress")
        self.key = key


def replica_id() -> str:
    """This process, as lease rows name their holder."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class ThreadLease:
    """A held claim on one thread. ``release()`` is idempotent and finishes even when the caller is
    cancelled (a client that went away), so the thread is free at once instead of after ``ttl_s``."""

    leases: "LeaseStore"
    key: str
    run_id: str
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    _renewer: asyncio.Task[None] | None = None
    _releasing: asyncio.Task[None] | None = None

    async def release(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        if self._releasing is None:
            self._releasing = asyncio.create_task(self._release(), name=f"release-{self.key}")
        await asyncio.shield(self._releasing)

    async def _release(self) -> None:
        if self._renewer is not None:
            await asyncio.gather(self._renewer, return_exceptions=True)
        try:
            await self.leases.release(self.key, self.run_id)
        except Exception as exc:  # the row expires on its own
            logger.warning("releasing thread %s: %s", self.key, describe_error(exc))


class LeaseStore(Protocol):
    async def acquire(self, key: str, run_id: str, *, max_hold_s: float | None = None) -> ThreadLease: ...

    async def release(self, key: str, run_id: str) -> None: ...


class LocalThreadLeases:
    """The same policy inside one process, for an app running without a database (in-memory memory)."""

    def __init__(self) -> None:
        self._holders: dict[str, str] = {}

    async def acquire(self, key: str, run_id: str, *, max_hold_s: float | None = None) -> ThreadLease:
        if key in self._holders:
            raise ThreadBusy(key)
        self._holders[key] = run_id
        return ThreadLease(self, key, run_id)

    async def release(self, key: str, run_id: str) -> None:
        if self._holders.get(key) == run_id:
            del self._holders[key]


class ThreadLeases:
    """Lease rows in ``thread_runs`` on ``engine`` (see the module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        renew_s: float = DEFAULT_RENEW_S,
        replica: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` gives the wall-clock seconds that expiry times are written and compared in (the same
        on every replica); tests pass their own to expire a claim without waiting for it."""
        if not 0 < renew_s < ttl_s:
            raise ValueError("renew_s must be positive and shorter than ttl_s")
        self.engine = engine
        self.ttl_s = ttl_s
        self.renew_s = renew_s
        self.replica = replica or replica_id()
        self.clock = clock

    async def acquire(self, key: str, run_id: str, *, max_hold_s: float | None = None) -> ThreadLease:
        """Claim ``key`` for ``run_id`` and keep renewing it (for at most ``max_hold_s``).

        Raises :class:`ThreadBusy` when another unexpired run holds it.
        """
        for _ in range(3):  # a row released between our INSERT and UPDATE: try the INSERT again
            if await self._insert(key, run_id) or await self._take_over_expired(key, run_id):
                break
            if not await self._exists(key):
                continue
            raise ThreadBusy(key)
        else:
            raise ThreadBusy(key)
        lease = ThreadLease(self, key, run_id)
        lease._renewer = asyncio.create_task(self._renew(lease, max_hold_s), name=f"lease-{key}")
        return lease

    async def release(self, key: str, run_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(thread_runs).where(
                    and_(thread_runs.c.thread_key == key, thread_runs.c.run_id == run_id)
                )
            )

    async def holder(self, key: str) -> str | None:
        """The run id holding ``key`` now (expired claims do not count)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    thread_runs.select().where(
                        and_(thread_runs.c.thread_key == key, thread_runs.c.expires_at >= self.clock())
                    )
                )
            ).first()
        return row.run_id if row is not None else None

    async def _insert(self, key: str, run_id: str) -> bool:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(thread_runs).values(
                        thread_key=key, run_id=run_id, replica=self.replica, expires_at=self._expiry()
                    )
                )
            return True
        except IntegrityError:
            return False

    async def _take_over_expired(self, key: str, run_id: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(thread_runs)
                .where(and_(thread_runs.c.thread_key == key, thread_runs.c.expires_at < self.clock()))
                .values(run_id=run_id, replica=self.replica, expires_at=self._expiry())
            )
        if result.rowcount == 1:
            logger.warning("thread %s: took over an expired claim (its replica stopped renewing)", key)
            return True
        return False

    async def _exists(self, key: str) -> bool:
        async with self.engine.connect() as conn:
            row = (await conn.execute(thread_runs.select().where(thread_runs.c.thread_key == key))).first()
        return row is not None

    async def _extend(self, key: str, run_id: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(thread_runs)
                .where(and_(thread_runs.c.thread_key == key, thread_runs.c.run_id == run_id))
                .values(expires_at=self._expiry())
            )
        return result.rowcount == 1

    async def _renew(self, lease: ThreadLease, max_hold_s: float | None) -> None:
        deadline = None if max_hold_s is None else time.monotonic() + max_hold_s
        confirmed = time.monotonic()
        while deadline is None or time.monotonic() < deadline:
            await asyncio.sleep(self.renew_s)
            try:
                if not await self._extend(lease.key, lease.run_id):
                    logger.error("thread %s: run %s lost its claim to another run", lease.key, lease.run_id)
                    lease.lost.set()
                    return
                confirmed = time.monotonic()
            except Exception as exc:
                logger.warning("thread %s: renewing the claim failed: %s", lease.key, describe_error(exc))
                if time.monotonic() - confirmed >= self.ttl_s:
                    logger.error("thread %s: claim expired while the database was unreachable", lease.key)
                    lease.lost.set()
                    return
        logger.warning(
            "thread %s: run %s held the thread past %.0fs; claim left to expire",
            lease.key,
            lease.run_id,
            max_hold_s,
        )

    def _expiry(self) -> float:
        return self.clock() + self.ttl_s
