"""The agent metrics, through Ray's metrics API: Prometheus series next to Serve's own.

Made with ``ray.serve.metrics``, so each series also carries Serve's ``application``, ``deployment`` and
``replica`` tags, and Ray exports them on each node's metrics port with the ``ray_`` prefix
(``ray_agent_runs_total``). Outside a replica (unit tests, the one-process bench) recording is a no-op.

- ``agent_runs_total{agent, outcome}``: finished runs; ``outcome`` is ``ok``, an ``error`` code of the
  ``/chat`` contract (``timeout``, ``llm_unavailable``, ...) or ``stopped`` (the client went away).
- ``agent_run_duration_seconds{agent, outcome}``: a run from its start to its end (histogram).
- ``agent_time_to_first_token_seconds{agent}``: a run's start to its first answer token (histogram).
- ``agent_tool_calls_total{agent, tool, status}``: tool results, ``ok`` or ``error``.
- ``agent_llm_tokens_total{agent, model, kind}``: tokens of a run's model calls, ``kind`` ``input`` or
  ``output``.
- ``agent_a2a_delegations_total{target, status}``: calls to another agent over A2A, ``ok`` or how they
  failed (``unavailable``, ``timeout``, ``failed``, ``error``); the calling app is Serve's tag.
- ``agent_open_streams{agent}``: runs streaming right now (gauge, per replica).

The runner feeds a run's events to :class:`RunMetrics`, so every framework is counted alike.
"""

import time
from collections import Counter as Tally
from dataclasses import dataclass
from functools import cache
from typing import cast

from ray.serve.metrics import Counter, Gauge, Histogram

from protocols.events import ChatEvent, Token, ToolResult, Usage

# Seconds: an agent run takes from well under a second (cached, scripted) to minutes (delegations).
RUN_SECONDS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
FIRST_TOKEN_SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]


@dataclass(frozen=True)
class AgentMetrics:
    """The metric objects of this process (see the module docstring for what each counts)."""

    runs: Counter
    run_duration: Histogram
    first_token: Histogram
    tool_calls: Counter
    llm_tokens: Counter
    delegations: Counter
    open_streams: Gauge


def _tags(*keys: str) -> tuple[str]:
    """Tag keys as Ray's annotations spell a tuple of any length."""
    return cast("tuple[str]", keys)


@cache
def agent_metrics() -> AgentMetrics:
    """This process's metrics, made on first use (inside a replica, so Serve's tags are known)."""
    return AgentMetrics(
        runs=Counter("agent_runs_total", "Agent runs by agent and outcome.", _tags("agent", "outcome")),
        run_duration=Histogram(
            "agent_run_duration_seconds", "Agent run duration.", RUN_SECONDS, _tags("agent", "outcome")
        ),
        first_token=Histogram(
            "agent_time_to_first_token_seconds",
            "Run start to first answer token.",
            FIRST_TOKEN_SECONDS,
            ("agent",),
        ),
        tool_calls=Counter(
            "agent_tool_calls_total", "Tool calls by tool and status.", _tags("agent", "tool", "status")
        ),
        llm_tokens=Counter(
            "agent_llm_tokens_total", "LLM tokens by agent, model and kind.", _tags("agent", "model", "kind")
        ),
        delegations=Counter(
            "agent_a2a_delegations_total", "Delegations to other agents over A2A.", _tags("target", "status")
        ),
        open_streams=Gauge("agent_open_streams", "Agent runs streaming now.", ("agent",)),
    )


_open_streams: Tally[str] = Tally()


class RunMetrics:
    """One run's metrics: :meth:`observe` each event it streams, then :meth:`finish` once."""

    def __init__(self, agent: str, started: float) -> None:
        """``started``: the run's start (``time.monotonic()``), which durations are measured from."""
        self.agent = agent
        self.metrics = agent_metrics()
        self.started = started
        self._first_token_seen = False
        _open_streams[agent] += 1
        self.metrics.open_streams.set(_open_streams[agent], tags={"agent": agent})

    def observe(self, event: ChatEvent) -> None:
        """Count a tool result; time the first token."""
        if isinstance(event, Token) and not self._first_token_seen:
            self._first_token_seen = True
            self.metrics.first_token.observe(time.monotonic() - self.started, tags={"agent": self.agent})
        elif isinstance(event, ToolResult):
            tags = {"agent": self.agent, "tool": event.name, "status": event.status}
            self.metrics.tool_calls.inc(tags=tags)

    def finish(self, outcome: str, usage: Usage, model: str | None) -> None:
        """The run ended with ``outcome``, having spent ``usage`` on ``model``."""
        tags = {"agent": self.agent, "outcome": outcome}
        self.metrics.runs.inc(tags=tags)
        self.metrics.run_duration.observe(time.monotonic() - self.started, tags=tags)
        for kind, tokens in (("input", usage.prompt_tokens), ("output", usage.completion_tokens)):
            if tokens:
                tags = {"agent": self.agent, "model": model or "unknown", "kind": kind}
                self.metrics.llm_tokens.inc(tokens, tags=tags)
        _open_streams[self.agent] -= 1
        self.metrics.open_streams.set(_open_streams[self.agent], tags={"agent": self.agent})


def count_delegation(target: str, status: str) -> None:
    """One A2A call to ``target`` (its tool name) ended with ``status``."""
    agent_metrics().delegations.inc(tags={"target": target, "status": status})
