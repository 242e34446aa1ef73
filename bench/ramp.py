"""A load ramp: concurrent chats from 1 up to ``--peak``, held until the apps scale, then none.

Workers are added level by level (``--levels``, each held ``--stage-s``); every worker runs weather
chats one after the other, through the weather agent's ``/chat`` or, for every ``--a2a-every``-th
worker, as A2A tasks through the weather agent's A2A face (which runs them on the same ``/chat``), so
the agent, A2A and MCP apps all carry load. At the last level the load is held until every watched
app runs more than one replica (at most ``--hold-s``), then the workers finish their chats and stop,
and the ramp waits until every watched app is back at its count before the load (at most
``--settle-s``). Replica counts are sampled every ``--sample-s`` the whole time.

It reports chats sent, answered and failed (by error code) per kind, each app's replica counts over
time, the time to its first scale-up and back down, and writes ``--json``. Against a cluster of
``make up``, which it reads with ``serve status``:

    make up OFFLINE=1
    .venv/bin/python -m bench.ramp --base-url http://127.0.0.1:8000

The apps scale only where their autoscaling settings let them (``target_ongoing_requests``, the delays):
``tests/integration/test_autoscaling.py`` lowers them for the ramp as a lightweight update.
"""

import argparse
import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.load import ChatMarks, error_codes, http_pool, one_chat
from protocols.a2a_client import A2ACallError, a2a_execute_text
from protocols.chat_client import ChatClient

logger = logging.getLogger("bench.ramp")

DEFAULT_TEXT = "What is the weather in Seattle this week?"
CHAT_ROUTE = "/weather-agent"
A2A_ROUTE = "/a2a-weather"
WATCHED_APPS = ("weather_agent", "a2a_weather", "mcp_weather")

ReplicaCounts = Callable[[], Awaitable[dict[str, int]]]


@dataclass
class KindCounts:
    """Requests of one kind (``chat`` or ``a2a``): sent, answered, failed by code."""

    sent: int = 0
    answered: int = 0
    failed: dict[str, int] = field(default_factory=dict)

    def add(self, marks: Iterable[ChatMarks]) -> None:
        """Count these requests' outcomes."""
        marks = list(marks)
        self.sent += len(marks)
        self.answered += sum(1 for m in marks if m.ok)
        for code, count in error_codes(marks).items():
            self.failed[code] = self.failed.get(code, 0) + count


@dataclass
class RampResult:
    """What a ramp did and what the apps did meanwhile (times in seconds from its start)."""

    levels: list[tuple[float, int]]  # (when, workers) for each level reached
    load_ended_s: float  # the last worker stopped
    counts: dict[str, KindCounts]
    replicas: dict[str, list[tuple[float, int]]]  # app -> (when, running replicas) samples
    baseline: dict[str, int]  # app -> running replicas before the load
    scaled_up_s: dict[str, float | None]  # app -> first sample above its baseline
    back_down_s: dict[str, float | None]  # app -> first sample at its baseline after the load ended

    @property
    def failed(self) -> int:
        """Requests of every kind that failed."""
        return sum(sum(kind.failed.values()) for kind in self.counts.values())

    def peak(self, app: str) -> int:
        """The most replicas ``app`` ran in one sample."""
        return max((n for _, n in self.replicas.get(app, [])), default=0)

    def as_json(self) -> dict[str, Any]:
        """The figures as JSON (with each app's peak)."""
        body = asdict(self)
        body["peak"] = {app: self.peak(app) for app in self.replicas}
        return body


def describe(result: RampResult) -> list[str]:
    """Lines for people: the requests, then each app's replicas."""
    lines = []
    for kind, counts in result.counts.items():
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(counts.failed.items())) or "none"
        lines.append(f"{kind}: {counts.sent} sent, {counts.answered} answered, failed: {codes}")
    for app, samples in result.replicas.items():
        up, down = result.scaled_up_s.get(app), result.back_down_s.get(app)
        trace = " ".join(str(n) for _, n in samples)
        lines.append(
            f"{app}: {result.baseline.get(app)} -> peak {result.peak(app)} replicas; scaled up at "
            f"{'-' if up is None else f'{up:.0f} s'}, back at {'-' if down is None else f'{down:.0f} s'} "
            f"(load ended at {result.load_ended_s:.0f} s); samples: {trace}"
        )
    return lines


async def one_a2a_task(base_url: str, text: str) -> ChatMarks:
    """One A2A task; marked like a chat (``done`` when answered, ``error`` with the failure's kind)."""
    marks = ChatMarks()
    start = time.perf_counter()
    try:
        await a2a_execute_text(base_url, text, timeout_s=300)
        marks.done = time.perf_counter() - start
    except A2ACallError as exc:
        marks.error = type(exc).__name__
        logger.warning("A2A task failed: %s", exc)
    return marks


class _Sampler:
    """Replica counts every ``every_s`` seconds into ``samples``, from the ramp's start."""

    def __init__(self, counts: ReplicaCounts, apps: Iterable[str], start: float, every_s: float) -> None:
        self.counts, self.apps, self.start, self.every_s = counts, list(apps), start, every_s
        self.samples: dict[str, list[tuple[float, int]]] = {app: [] for app in self.apps}
        self.latest: dict[str, int] = {}

    async def sample(self) -> dict[str, int]:
        try:
            counts = await self.counts()
        except Exception as exc:  # a status call that fails once is not the ramp's failure
            logger.warning("replica counts unavailable: %r", exc)
            return self.latest
        now = round(time.monotonic() - self.start, 1)
        for app in self.apps:
            self.samples[app].append((now, counts.get(app, 0)))
        self.latest = {app: counts.get(app, 0) for app in self.apps}
        return self.latest

    async def run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self.every_s)


async def ramp(
    base_url: str,
    replica_counts: ReplicaCounts,
    *,
    levels: Iterable[int] = (1, 10, 25, 50),
    stage_s: float = 15.0,
    hold_s: float = 180.0,
    settle_s: float = 180.0,
    a2a_every: int = 5,
    sample_s: float = 2.0,
    apps: Iterable[str] = WATCHED_APPS,
    text: str = DEFAULT_TEXT,
) -> RampResult:
    """Run the ramp against the stack at ``base_url`` (see the module's docstring)."""
    levels = list(levels)
    base_url = base_url.rstrip("/")
    start = time.monotonic()
    sampler = _Sampler(replica_counts, apps, start, sample_s)
    baseline = dict(await sampler.sample())
    stop = asyncio.Event()
    marks: dict[str, list[ChatMarks]] = {"chat": [], "a2a": []}

    async def worker(index: int, client: ChatClient) -> None:
        kind = "a2a" if a2a_every and index % a2a_every == a2a_every - 1 else "chat"
        while not stop.is_set():
            if kind == "a2a":
                marks[kind].append(await one_a2a_task(base_url + A2A_ROUTE, text))
            else:
                marks[kind].append(await one_chat(client, text))

    def scaled() -> bool:
        return all(sampler.latest.get(app, 0) > baseline.get(app, 0) for app in sampler.apps)

    sampling = asyncio.create_task(sampler.run())
    try:
        reached: list[tuple[float, int]] = []
        timeout = httpx.Timeout(300, connect=30)
        async with http_pool(max(levels)) as http:
            client = ChatClient(base_url + CHAT_ROUTE, http=http, stream_timeout=timeout)
            workers: list[asyncio.Task[None]] = []
            try:
                for level in levels:
                    workers += [asyncio.create_task(worker(i, client)) for i in range(len(workers), level)]
                    reached.append((round(time.monotonic() - start, 1), level))
                    logger.info("ramp: %d workers", level)
                    await asyncio.sleep(stage_s)
                deadline = time.monotonic() + hold_s
                while not scaled() and time.monotonic() < deadline:
                    await asyncio.sleep(sample_s)
                logger.info("ramp: load ends (replicas %s)", sampler.latest)
            finally:
                stop.set()
                await asyncio.gather(*workers)
        load_ended = time.monotonic() - start
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline and any(
            sampler.latest.get(app, 0) > baseline.get(app, 0) for app in sampler.apps
        ):
            await asyncio.sleep(sample_s)
    finally:  # the sampler stops with the ramp, however it ends
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)
    await sampler.sample()

    def first(app: str, after: float, above: bool) -> float | None:
        """When ``app`` was first above (or back at) its baseline, from ``after`` on."""
        return next((t for t, n in sampler.samples[app] if t >= after and (n > baseline[app]) == above), None)

    counts = {kind: KindCounts() for kind in marks}
    for kind, kind_marks in marks.items():
        counts[kind].add(kind_marks)
    return RampResult(
        levels=reached,
        load_ended_s=round(load_ended, 1),
        counts=counts,
        replicas=sampler.samples,
        baseline=baseline,
        scaled_up_s={app: first(app, 0, above=True) for app in sampler.apps},
        back_down_s={app: first(app, load_ended, above=False) for app in sampler.apps},
    )


def serve_status_counts(read_status: Callable[[], dict[str, Any]]) -> ReplicaCounts:
    """Running replicas per app from a ``serve status`` reader (summed over the app's deployments)."""

    async def counts() -> dict[str, int]:
        status = await asyncio.to_thread(read_status)
        return {
            name: sum(
                (deployment.get("replica_states") or {}).get("RUNNING", 0)
                for deployment in (app.get("deployments") or {}).values()
            )
            for name, app in (status.get("applications") or {}).items()
        }

    return counts


def main() -> None:
    """Command line: ``python -m bench.ramp --help`` (against a cluster of ``make up``)."""
    from platform_core.cluster import ClusterFiles, serve_status

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--levels", default="1,10,25,50", help="workers per level, comma-separated")
    parser.add_argument("--stage-s", type=float, default=15.0)
    parser.add_argument("--hold-s", type=float, default=180.0)
    parser.add_argument("--settle-s", type=float, default=900.0)
    parser.add_argument("--a2a-every", type=int, default=5, help="every n-th worker sends A2A tasks")
    parser.add_argument("--sample-s", type=float, default=2.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    files = ClusterFiles()
    result = asyncio.run(
        ramp(
            args.base_url,
            serve_status_counts(lambda: serve_status(files)),
            levels=[int(x) for x in args.levels.split(",") if x.strip()],
            stage_s=args.stage_s,
            hold_s=args.hold_s,
            settle_s=args.settle_s,
            a2a_every=args.a2a_every,
            sample_s=args.sample_s,
        )
    )
    for line in describe(result):
        logger.info(line)
    if args.json is not None:
        args.json.write_text(json.dumps(result.as_json(), indent=2) + "\n")


if __name__ == "__main__":
    main()
