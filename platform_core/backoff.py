"""Exponential backoff with jitter, shared by every start-up retry (LLM discovery, tool discovery).

Services of the platform start in any order, so each client retries what it depends on instead of
failing its replica; jitter keeps many replicas from retrying in lockstep.
"""

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delay before the next attempt: ``initial_s * factor**failures``, capped at ``max_s``, ±20 %."""

    initial_s: float = 0.5
    max_s: float = 15.0
    factor: float = 2.0
    jitter: float = 0.2
    failures: int = field(default=0, init=False)

    def next_delay(self) -> float:
        """Record a failure and return how long to wait before trying again."""
        base = min(self.max_s, self.initial_s * self.factor**self.failures)
        self.failures += 1
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        """Record a success: the next failure waits ``initial_s`` again."""
        self.failures = 0
