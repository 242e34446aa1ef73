"""Shared pieces of the identity tests (no tests here): a clock the test moves, and services on it."""

import uuid
from dataclasses import dataclass

from identity.service import IdentityService

START = 1_800_057_600.0  # a whole minute and a whole UTC day in unix time: 2027-01-16 00:00 UTC


@dataclass
class FakeClock:
    """A clock that stands still until the test moves it (``clock.now += 5``)."""

    now: float = START

    def __call__(self) -> float:
        return self.now


def unique(name: str) -> str:
    """A key name no other test of the module (which may share one PostgreSQL database) uses."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def service(
    url: str, clock: FakeClock, *, cache_ttl_s: float = 2.0, limits_url: str | None = None
) -> IdentityService:
    """An identity service (one replica's worth) whose every clock is ``clock``."""
    return IdentityService(
        url, cache_ttl_s=cache_ttl_s, clock=clock, cache_clock=clock, limits_url=limits_url
    )
