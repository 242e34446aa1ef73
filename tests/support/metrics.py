"""The agent metrics recorded in memory, to read back what a run counted (Ray's recorder is write-only).

``recorded = record_agent_metrics(monkeypatch)`` replaces the process's metric objects for the test;
``recorded.total("runs", agent="tester", outcome="ok")`` sums a counter's increments whose tags include
the ones given, ``recorded.samples("first_token")`` lists a histogram's or gauge's values in order.
"""

from dataclasses import dataclass, field, fields
from typing import Any

import pytest

from agent_runtime import metrics


@dataclass
class RecordedMetric:
    """Stands in for a Ray ``Counter``, ``Histogram`` or ``Gauge``: keeps every call."""

    calls: list[tuple[float, dict[str, str]]] = field(default_factory=list)

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        self.calls.append((value, dict(tags or {})))

    observe = inc
    set = inc


class RecordedMetrics:
    def __init__(self) -> None:
        self.by_name = {f.name: RecordedMetric() for f in fields(metrics.AgentMetrics)}
        self.agent_metrics = metrics.AgentMetrics(**self.by_name)  # type: ignore[arg-type]

    def samples(self, name: str, **tags: str) -> list[float]:
        return [v for v, t in self.by_name[name].calls if tags.items() <= t.items()]

    def total(self, name: str, **tags: str) -> float:
        return sum(self.samples(name, **tags))

    def tags(self, name: str) -> list[dict[str, Any]]:
        return [t for _, t in self.by_name[name].calls]


def record_agent_metrics(monkeypatch: pytest.MonkeyPatch) -> RecordedMetrics:
    recorded = RecordedMetrics()
    monkeypatch.setattr(metrics, "agent_metrics", lambda: recorded.agent_metrics)
    return recorded
