"""One run per conversation at a time, across every replica: a lease row per busy thread.

A second message on a thread whose run is still going is refused (``409 thread_busy``) instead of
interleaving two runs' writes into one conversation. The claim lives in the shared database
(``thread_runs``: thread key, run id, replica, expiry), so it holds whichever replica a request reaches:

- acquire: ``INSERT``; when the row exists, take it over only if it expired (one conditional ``UPDATE``,
  atomic in SQLite and PostgreSQL);
- while the run goes on, the holder renews the expiry every ``renew_s`` seconds;
- release: delete the row (only while it is still ours);
- a crashed replica stops renewing: its threads free themselves ``ttl_s`` seconds later.

A claim is lost only when the database says so: a renewal (``UPDATE ... WHERE run_id = ours``) matched
no row, because another run took the thread over or the row was deleted. Then :attr:`ThreadLease.lost` is
set and the run must stop. A renewal that fails (``database is locked`` under SQLite contention, a
database that is briefly unreachable, an event loop too busy to renew on time) is logged and retried with
backoff; it never stops a run by itself. A run that is merely slow under load keeps its thread: if its
claim expired meanwhile and no other run took it, the next successful renewal simply extends it again.

Each lease operation is one statement that commits on its own
(:func:`agent_runtime.state.database.single_statements`), so on SQLite the file's write lock is held only
while that statement runs.
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

from agent_runtime.state.database import single_statements, thread_runs
from platform_core.backoff import Backoff
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
    """A held claim on one thread.

    ``release()`` is idempotent and finishes even when the caller is cancelled (a client that went away),
    so the thread is free at once instead of after ``ttl_s``. ``lost`` is set when the database says
    another run took the thread over.
    """

    leases: "LeaseStore"
    key: str
    run_id: str
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    _renewer: asyncio.Task[None] | None = None
    _releasing: asyncio.Task[None] | None = None

    async def release(self) -> None:
        """Stop renewing and delete the claim (once, however often it is called)."""
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
    """Where claims live: :class:`ThreadLeases` (the database) or :class:`LocalThreadLeases`."""

    async def acquire(self, key: str, run_id: str, *, max_hold_s: float | None = None) -> ThreadLease:
        """Claim ``key`` for ``run_id``; raises :class:`ThreadBusy` when another run holds it."""
        ...

    async def release(self, key: str, run_id: str) -> None:
        """Give up the claim on ``key`` if ``run_id`` holds it."""
        ...


class LocalThreadLeases:
    """The same policy inside one process, for an app running without a database (in-memory memory)."""

    def __init__(self) -> None:
        self._holders: dict[str, str] = {}

    async def acquire(self, key: str, run_id: str, *, max_hold_s: float | None = None) -> ThreadLease:
        """Claim ``key`` for ``run_id``; raises :class:`ThreadBusy` when another run holds it."""
        if key in self._holders:
            raise ThreadBusy(key)
        self._holders[key] = run_id
        return ThreadLease(self, key, run_id)

    async def release(self, key: str, run_id: str) -> None:
        """Give up the claim on ``key`` if ``run_id`` holds it."""
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
        """Leases on ``engine``: claims expire ``ttl_s`` after their last renewal, renewed every ``renew_s``.

        ``clock`` gives the wall-clock seconds that expiry times are written and compared in (the same
        on every replica); tests pass their own to expire a claim without waiting for it.
        """
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
        """Delete the claim on ``key`` if ``run_id`` still holds it."""
        async with single_statements(self.engine) as conn:
            await conn.execute(
                delete(thread_runs).where(
                    and_(thread_runs.c.thread_key == key, thread_runs.c.run_id == run_id)
                )
            )

    async def holder(self, key: str) -> str | None:
        """The run id holding ``key`` now (expired claims do not count)."""
        async with single_statements(self.engine) as conn:
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
            async with single_statements(self.engine) as conn:
                await conn.execute(
                    insert(thread_runs).values(
                        thread_key=key, run_id=run_id, replica=self.replica, expires_at=self._expiry()
                    )
                )
            return True
        except IntegrityError:
            return False

    async def _take_over_expired(self, key: str, run_id: str) -> bool:
        async with single_statements(self.engine) as conn:
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
        async with single_statements(self.engine) as conn:
            row = (await conn.execute(thread_runs.select().where(thread_runs.c.thread_key == key))).first()
        return row is not None

    async def _extend(self, key: str, run_id: str) -> bool:
        async with single_statements(self.engine) as conn:
            result = await conn.execute(
                update(thread_runs)
                .where(and_(thread_runs.c.thread_key == key, thread_runs.c.run_id == run_id))
                .values(expires_at=self._expiry())
            )
        return result.rowcount == 1

    async def _renew(self, lease: ThreadLease, max_hold_s: float | None) -> None:
        """Extend the claim every ``renew_s`` until released (or ``max_hold_s`` has passed).

        Only a renewal that matched no row loses the claim; a failed one is retried with backoff.
        """
        deadline = None if max_hold_s is None else time.monotonic() + max_hold_s
        backoff = Backoff(initial_s=self.renew_s / 5, max_s=self.renew_s)
        delay = self.renew_s
        failing_since: float | None = None
        while deadline is None or time.monotonic() < deadline:
            await asyncio.sleep(delay)
            try:
                ours = await self._extend(lease.key, lease.run_id)
            except Exception as exc:
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                delay = backoff.next_delay()
                self._log_failed_renewal(lease, exc, attempt=backoff.failures, failing_s=now - failing_since)
                continue
            if not ours:
                logger.error(
                    "thread %s: run %s lost its claim: another run took the thread over",
                    lease.key,
                    lease.run_id,
                )
                lease.lost.set()
                return
            if failing_since is not None:
                logger.warning(
                    "thread %s: claim renewed again after %.1fs of failed renewals",
                    lease.key,
                    time.monotonic() - failing_since,
                )
            failing_since = None
            backoff.reset()
            delay = self.renew_s
        logger.warning(
            "thread %s: run %s held the thread past %.0fs; claim left to expire",
            lease.key,
            lease.run_id,
            max_hold_s,
        )

    def _log_failed_renewal(
        self, lease: ThreadLease, exc: Exception, *, attempt: int, failing_s: float
    ) -> None:
        # The first failure, then about one line per ttl_s: a long outage does not flood the log.
        every = max(1, round(self.ttl_s / self.renew_s))
        if attempt != 1 and attempt % every:
            return
        stale = " (its claim may have expired; the run goes on unless another run takes the thread)"
        logger.warning(
            "thread %s: renewing the claim of run %s failed (attempt %d, %.1fs): %s%s",
            lease.key,
            lease.run_id,
            attempt,
            failing_s,
            describe_error(exc),
            stale if failing_s >= self.ttl_s else "",
        )

    def _expiry(self) -> float:
        return self.clock() + self.ttl_s
