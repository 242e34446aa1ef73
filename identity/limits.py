"""Per-key limits, counted in the platform database so that every replica shares them.

Two limits, each optional per key (:class:`identity.keys.APIKey`):

- **requests per minute** (``rpm``): a fixed window per UTC minute; a request over the limit is refused
  and not counted. (A fixed window lets a client send up to twice the rate across a minute's boundary:
  the price of one row and one statement per request.)
- **LLM tokens per window** (``token_budget`` per ``budget_window_s``): prompt plus completion tokens as
  the LLM reported them, added after each call (:meth:`Limits.add_tokens`); a window starts at a multiple
  of its length in unix time (a ``1d`` window at 00:00 UTC). Once a window's tokens reach the budget,
  new requests are refused until the next window.

:meth:`Limits.check` answers ``allowed``, ``rate_limited`` or ``budget_exceeded`` with the seconds until
it is worth retrying; each check is one or two single-statement round trips, atomic on SQLite and
PostgreSQL alike (:func:`identity.schema.add_to`).
"""

import math
import time
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, select
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


def _window(now: float, length_s: float) -> tuple[int, int]:
    length = max(1, math.ceil(length_s))
    start = int(now // length) * length
    return start, start + length


def _retry_after(now: float, window_end: int) -> int:
    return max(1, math.ceil(window_end - now))


class Limits:
    """The per-key counters on a SQLAlchemy async engine (the tables come from :mod:`identity.schema`)."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = time.time) -> None:
        self.engine = engine
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
            start, end = _window(now, MINUTE_S)
            async with single_statements(self.engine) as conn:
                counted = await conn.execute(
                    add_to(
                        self.engine.dialect.name,
                        key_counters,
                        {"key_id": key.key_id, "kind": REQUESTS, "window_start": start},
                        {"count": 1},
                        values={"window_end": end},
                        only_if=key_counters.c.count < key.rpm,
                    )
                )
                if counted.first() is None:  # the minute's count is at the limit already
                    return Decision("rate_limited", _retry_after(now, end), tokens_left)
        return Decision("allowed", None, tokens_left)

    async def tokens_used(self, key: APIKey) -> tuple[int, int]:
        """LLM tokens ``key`` used in its current budget window, and when that window ends (unix s)."""
        start, end = _window(self.clock(), key.budget_window_s or DEFAULT_BUDGET_WINDOW_S)
        async with single_statements(self.engine) as conn:
            used = await conn.scalar(
                select(key_counters.c.count).where(
                    key_counters.c.key_id == key.key_id,
                    key_counters.c.kind == TOKENS,
                    key_counters.c.window_start == start,
                )
            )
        return int(used or 0), end

    async def add_tokens(self, key: APIKey, tokens: int) -> int:
        """Count ``tokens`` LLM tokens of ``key`` in its current window; returns the window's total.

        Nothing is counted for a key without a budget (0 is returned).
        """
        if key.token_budget is None or tokens <= 0:
            return 0
        start, end = _window(self.clock(), key.budget_window_s or DEFAULT_BUDGET_WINDOW_S)
        async with single_statements(self.engine) as conn:
            total = await conn.scalar(
                add_to(
                    self.engine.dialect.name,
                    key_counters,
                    {"key_id": key.key_id, "kind": TOKENS, "window_start": start},
                    {"count": tokens},
                    values={"window_end": end},
                )
            )
        return int(total or 0)

    async def prune(self, older_than_s: float = 86_400.0) -> int:
        """Delete counters of windows that ended more than ``older_than_s`` ago; returns how many."""
        cutoff = int(self.clock() - older_than_s)
        async with single_statements(self.engine) as conn:
            result = await conn.execute(delete(key_counters).where(key_counters.c.window_end < cutoff))
        return int(result.rowcount or 0)
