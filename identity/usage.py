"""Usage per principal and UTC day: runs, prompt and completion tokens, tool calls.

Each record adds to the day's row in one atomic statement (:func:`identity.schema.add_to`), so every
replica (and every agent of a delegated flow) adds to the same counters. Read with
``platform-keys usage`` or :meth:`UsageLedger.read`.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from identity.schema import add_to, usage_daily
from identity.scopes import Principal
from identity.store import Clock
from platform_core.sql import single_statements


@dataclass(frozen=True)
class UsageRow:
    """One principal's usage on one UTC day (``YYYY-MM-DD``)."""

    principal_id: str
    principal_name: str
    day: str
    runs: int
    prompt_tokens: int
    completion_tokens: int
    tool_calls: int


def utc_day(moment: float) -> str:
    """The UTC day of a unix time, ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(moment, UTC).date().isoformat()


class UsageLedger:
    """Usage counters on a SQLAlchemy async engine (the tables come from :mod:`identity.schema`)."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = time.time) -> None:
        self.engine = engine
        self.clock = clock

    async def record(
        self,
        principal: Principal,
        *,
        runs: int = 0,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        tool_calls: int = 0,
    ) -> None:
        """Add to ``principal``'s counters of today (UTC)."""
        counts = {
            "runs": runs,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "tool_calls": tool_calls,
        }
        if any(value < 0 for value in counts.values()):
            raise ValueError(f"usage counts cannot be negative: {counts}")
        async with single_statements(self.engine) as conn:
            await conn.execute(
                add_to(
                    self.engine.dialect.name,
                    usage_daily,
                    {"principal_id": principal.id, "day": utc_day(self.clock())},
                    counts,
                    values={"principal_name": principal.name},
                    returning=False,
                )
            )

    async def read(self, principal_id: str | None = None, *, since_day: str | None = None) -> list[UsageRow]:
        """Usage rows, by principal then day: of one principal (or all), from ``since_day`` on (or all)."""
        query = select(usage_daily).order_by(usage_daily.c.principal_name, usage_daily.c.day)
        if principal_id is not None:
            query = query.where(usage_daily.c.principal_id == principal_id)
        if since_day is not None:
            query = query.where(usage_daily.c.day >= since_day)
        async with single_statements(self.engine) as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [UsageRow(**{column: row[column] for column in UsageRow.__dataclass_fields__}) for row in rows]
