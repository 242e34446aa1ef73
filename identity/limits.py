"""Per-key limits, counted where every replica sees the same counts.

Two limits, each optional per key (:class:`identity.keys.APIKey`):

- **requests per minute** (``rpm``): a fixed window per UTC minute; a request over the limit is refused
  and not counted. (A fixed window lets a client send up to twice the rate across a minute's boundary:
  the price of one row and one statement per request.)
- **LLM tokens per window** (``token_budget`` per ``budget_window_s``): prompt plus completion tokens as
  the LLM reported them, added after each call (:meth:`Limits.add_tokens`); a window starts at a multiple
  of its length in unix time (a ``1d`` window at 00:00 UTC). Once a window's tokens reach the budget,
  new requests are refused until the next window.

:meth:`Limits.check` answers ``allowed``, ``rate_limited`` or ``budget_exceeded`` with the seconds until
it is worth retrying. The policy lives here once; the counts live in a :class:`Counters` store:
:class:`DatabaseCounters` in the platform database by default (one or two single-statement round trips
per check, atomic on SQLite and PostgreSQL alike: :func:`identity.schema.add_to`), or Redis with
``LIMITS_URL`` (:class:`identity.redis_limits.RedisCounters`), which takes the per-request writes off the
database.
"""

import math
import time
from dataclasses import dataclass
from typing import Literal, Protocol

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from identity.errors import BudgetExceeded, RateLimited
from identity.keys import APIKey
from identity.schema import add_to, key_counters
from identity.store import DEFAULT_BUDGET_WINDOW_S, Clock
from platform_core.sql import single_statements

MINUTE_S = 60
REQUESTS = "requests"
TOKENS = "tokens"

Outcome = Literal["allowed", "rate_limited", "budget_exceeded"]


@dataclass(frozen=True)
class Decision:
    """What :meth:`Limits.check` decided.

    ``retry_after_s``: seconds until the refused request may succeed (None when allowed);
    ``tokens_left``: the key's LLM tokens left in this window (None without a budget).
    """

    outcome: Outcome
    retry_after_s: int | None = None
    tokens_left: int | None = None

    @property
    def allowed(self) -> bool:
        """Whether the request may go on."""
        return self.outcome == "allowed"

    def raise_if_refused(self) -> None:
        """Raise the 429 :class:`~identity.errors.RateLimited` or ``BudgetExceeded`` of a refusal."""
        if self.outcome == "rate_limited":
            raise RateLimited(self.retry_after_s or 1)
        if self.outcome == "budget_exceeded":
            raise BudgetExceeded(self.retry_after_s or 1)


@dataclass(frozen=True)
class Window:
    """One counting window of a key: ``[start, end)`` in whole unix seconds."""

    start: int
    end: int

    @classmethod
    def around(cls, now: float, length_s: float) -> "Window":
        """The window of ``length_s`` (rounded up to whole seconds) that holds ``now``."""
        length = max(1, math.ceil(length_s))
        start = int(now // length) * length
        return cls(start, start + length)


class Counters(Protocol):
    """Where the per-key counts live; every replica of every app must reach the same store.

    A count is named by the key, its kind (:data:`REQUESTS`, :data:`TOKENS`) and its window.
    """

    async def add_below(self, key_id: str, kind: str, window: Window, limit: int) -> bool:
        """Add 1 to the count unless it has reached ``limit`` already; whether it was added."""
        ...

    async def add(self, key_id: str, kind: str, window: Window, amount: int) -> int:
        """Add ``amount`` to the count; returns the new count."""
        ...

    async def read(self, key_id: str, kind: str, window: Window) -> int:
        """The count (0 when none was made)."""
        ...

    async def prune(self, cutoff: int) -> int:
        """Forget the counts of windows that ended before ``cutoff`` (unix s); returns how many."""
        ...

    async def aclose(self) -> None:
        """Close the store's connections (not the platform database's engine, which others share)."""
        ...


class DatabaseCounters:
    """The counts in the platform database's ``key_counters`` table (:mod:`identity.schema`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add_below(self, key_id: str, kind: str, window: Window, limit: int) -> bool:
        """One guarded upsert: the count's row is added to only while below ``limit``."""
        return await self._upsert(key_id, kind, window, 1, only_if=key_counters.c.count < limit) is not None

    async def add(self, key_id: str, kind: str, window: Window, amount: int) -> int:
        """One upsert that returns the new count."""
        return await self._upsert(key_id, kind, window, amount) or 0

    async def _upsert(
        self,
        key_id: str,
        kind: str,
        window: Window,
        amount: int,
        *,
        only_if: ColumnElement[bool] | None = None,
    ) -> int | None:
        """The count after adding ``amount``; None when ``only_if`` held the row back."""
        async with single_statements(self.engine) as conn:
            result = await conn.execute(
                add_to(
                    self.engine.dialect.name,
                    key_counters,
                    {"key_id": key_id, "kind": kind, "window_start": window.start},
                    {"count": amount},
                    values={"window_end": window.end},
                    only_if=only_if,
                )
            )
            row = result.first()
        return None if row is None else int(row[0])

    async def read(self, key_id: str, kind: str, window: Window) -> int:
        """The count's row (0 when there is none)."""
        async with single_statements(self.engine) as conn:
            count = await conn.scalar(
                select(key_counters.c.count).where(
                    key_counters.c.key_id == key_id,
                    key_counters.c.kind == kind,
                    key_counters.c.window_start == window.start,
                )
            )
        return int(count or 0)

    async def prune(self, cutoff: int) -> int:
        """Delete the rows of windows that ended before ``cutoff``."""
        async with single_statements(self.engine) as conn:
            result = await conn.execute(delete(key_counters).where(key_counters.c.window_end < cutoff))
        return int(result.rowcount or 0)

    async def aclose(self) -> None:
        """Nothing of its own to close: the engine belongs to the identity service."""


def _retry_after(now: float, window_end: int) -> int:
    return max(1, math.ceil(window_end - now))


class Limits:
    """The limits policy of every key, on one :class:`Counters` store."""

    def __init__(self, counters: Counters, *, clock: Clock = time.time) -> None:
        self.counters = counters
        self.clock = clock

    async def check(self, key: APIKey) -> Decision:
        """Decide on one request of ``key``, counting it when allowed.

        The budget is checked first: nothing is counted for a request refused for its budget.
        """
        now = self.clock()
        tokens_left = None
        if key.token_budget is not None:
            used, end = await self.tokens_used(key)
            tokens_left = max(0, key.token_budget - used)
            if tokens_left == 0:
                return Decision("budget_exceeded", _retry_after(now, end), 0)
        if key.rpm is not None:
            minute = Window.around(now, MINUTE_S)
            if not await self.counters.add_below(key.key_id, REQUESTS, minute, key.rpm):
                return Decision("rate_limited", _retry_after(now, minute.end), tokens_left)
        return Decision("allowed", None, tokens_left)

    def _budget_window(self, key: APIKey) -> Window:
        return Window.around(self.clock(), key.budget_window_s or DEFAULT_BUDGET_WINDOW_S)

    async def tokens_used(self, key: APIKey) -> tuple[int, int]:
        """LLM tokens ``key`` used in its current budget window, and when that window ends (unix s)."""
        window = self._budget_window(key)
        return await self.counters.read(key.key_id, TOKENS, window), window.end

    async def add_tokens(self, key: APIKey, tokens: int) -> int:
        """Count ``tokens`` LLM tokens of ``key`` in its current window; returns the window's total.

        Nothing is counted for a key without a budget (0 is returned).
        """
        if key.token_budget is None or tokens <= 0:
            return 0
        return await self.counters.add(key.key_id, TOKENS, self._budget_window(key), tokens)

    async def prune(self, older_than_s: float = 86_400.0) -> int:
        """Delete counters of windows that ended more than ``older_than_s`` ago; returns how many."""
        return await self.counters.prune(int(self.clock() - older_than_s))
