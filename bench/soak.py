"""A soak: ``--streams`` concurrent weather chats held for ``--minutes``, watching every replica's resources.

``make soak`` starts its own offline stack (``serve_config.yaml``; ``--config`` for another), warms it
up, then keeps 20 chats in flight for 10 minutes (each finished chat is followed by a new one) and
reports, per window of ``--window-s``: chats finished, errors, p50/p99 of the first event and of
``done``; and for every Serve replica, proxy and controller process of the stack: resident memory (RSS)
and open file descriptors at the start of the load and at its end. Targets: 0 errors, RSS growth
< 10 %, no descriptor growth. The figures go to ``bench/soak.json``; the exit status is 1 when a target
is missed.

    make soak                                        # 20 streams, 10 minutes
    .venv/bin/python -m bench.soak --minutes 1       # a short one
    .venv/bin/python -m bench.soak --base-url http://127.0.0.1:8000 --root-pid <pid of serve run>

Processes are found below ``root_pid`` (the ``serve run`` this starts, or the process that started the
Ray instance) by their Ray titles (``ray::ServeReplica:<app>:<deployment>``, ``ray::ProxyActor``,
``ray::ServeController``); with ``--base-url`` and no ``--root-pid`` only the load is reported.
"""

import argparse
import asyncio
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.load import ChatMarks, error_codes, http_pool, one_chat, percentile
from bench.stack import REPO_ROOT, offline_stack
from protocols.chat_client import ChatClient

logger = logging.getLogger("bench.soak")

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "soak.json"
DEFAULT_TEXT = "What is the weather in Seattle this week?"
ROUTE = "/weather-agent"
RSS_GROWTH_LIMIT_PCT = 10.0
# Descriptors a process may gain between the samples: connection pools (to the LLM, MCP, upstreams) keep
# as many idle connections as the busiest moment needed, up to their limits; a leak grows with every
# chat (hundreds in a soak), far beyond this.
FD_SLACK = 8
# A pause before each sample, for closed connections to be closed on the server's side too.
SETTLE_S = 2.0
_TITLES = ("ray::ServeReplica:", "ray::ProxyActor", "ray::ServeController")


@dataclass
class ProcessUsage:
    """One process's resources at one moment."""

    rss_mb: float
    open_fds: int


@dataclass
class Window:
    """The chats that finished within one window of the soak."""

    ends_at_s: float
    finished: int
    errors: int
    first_event_p50_ms: float | None
    first_event_p99_ms: float | None
    done_p50_ms: float | None
    done_p99_ms: float | None


@dataclass
class SoakResult:
    """What a soak saw; :meth:`missed` names the targets it missed."""

    streams: int
    seconds: float
    chats: int
    errors: int
    error_codes: dict[str, int]
    windows: list[Window]
    start: dict[str, ProcessUsage] = field(default_factory=dict)
    end: dict[str, ProcessUsage] = field(default_factory=dict)
    # RSS (MiB) of each process at the end of each window: a leak climbs window after window, a warm-up
    # levels off.
    rss_series: dict[str, list[float]] = field(default_factory=dict)

    def rss_growth_pct(self) -> dict[str, float]:
        """Each process's RSS growth from start to end, in percent (processes seen at both)."""
        return {
            name: round(100 * (self.end[name].rss_mb - usage.rss_mb) / usage.rss_mb, 1)
            for name, usage in self.start.items()
            if name in self.end and usage.rss_mb > 0
        }

    def fd_growth(self) -> dict[str, int]:
        """Each process's growth in open file descriptors from start to end."""
        return {
            name: self.end[name].open_fds - usage.open_fds
            for name, usage in self.start.items()
            if name in self.end
        }

    def missed(self, *, fd_slack: int = 0) -> list[str]:
        """The targets missed: errors, RSS growth over 10 %, descriptors grown by more than ``fd_slack``."""
        missed = [f"{self.errors} failed chats ({self.error_codes})"] if self.errors else []
        missed += [
            f"{name}: RSS +{pct}%"
            for name, pct in self.rss_growth_pct().items()
            if pct > RSS_GROWTH_LIMIT_PCT
        ]
        missed += [f"{name}: +{n} file descriptors" for name, n in self.fd_growth().items() if n > fd_slack]
        return missed

    def as_json(self) -> dict[str, Any]:
        """The figures, for ``bench/soak.json``."""
        return {
            **asdict(self),
            "rss_growth_pct": self.rss_growth_pct(),
            "fd_growth": self.fd_growth(),
        }


def _title(process: psutil.Process) -> str | None:
    try:
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    first = cmdline[0] if cmdline else ""
    if not first.startswith(_TITLES):
        return None
    # Ray retitles a worker while it runs a task ("ray::ProxyActor.proxy_request",
    # "ray::ServeReplica:app:deployment.check_health"): the process's name is the title without it.
    title = first.split(" ")[0]
    head, _, last = title.rpartition(":")
    return f"{head}:{last.split('.')[0]}" if head else title.split(".")[0]


def serve_processes(root_pid: int) -> dict[str, ProcessUsage]:
    """RSS and open descriptors of the Serve processes below ``root_pid``, by title (``#n`` for repeats)."""
    usage: dict[str, ProcessUsage] = {}
    for process in psutil.Process(root_pid).children(recursive=True):
        title = _title(process)
        if title is None:
            continue
        try:
            sample = ProcessUsage(round(process.memory_info().rss / 2**20, 1), process.num_fds())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        name, n = title, 1
        while name in usage:
            n += 1
            name = f"{title}#{n}"
        usage[name] = sample
    return usage


def _window(marks: list[ChatMarks], ends_at_s: float) -> Window:
    first = [m.first_event for m in marks if m.first_event is not None]
    done = [m.done for m in marks if m.ok and m.done is not None]

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return Window(
        ends_at_s=round(ends_at_s, 1),
        finished=len(marks),
        errors=sum(1 for m in marks if not m.ok),
        first_event_p50_ms=ms(percentile(first, 0.5)),
        first_event_p99_ms=ms(percentile(first, 0.99)),
        done_p50_ms=ms(percentile(done, 0.5)),
        done_p99_ms=ms(percentile(done, 0.99)),
    )


async def soak(
    base_url: str,
    *,
    streams: int = 20,
    seconds: float = 600,
    window_s: float = 60,
    root_pid: int | None = None,
    route: str = ROUTE,
    text: str = DEFAULT_TEXT,
) -> SoakResult:
    """Hold ``streams`` chats for ``seconds`` (after two warm-up rounds) and report (see the module doc)."""
    timeout = httpx.Timeout(300, connect=30)
    # Warm-up: two rounds at full concurrency (connections, pools, caches), before the first sample. Both
    # samples are taken with the soak's own connections closed (the proxy counts them as descriptors).
    async with http_pool(streams) as http:
        client = ChatClient(f"{base_url.rstrip('/')}{route}", http=http, stream_timeout=timeout)
        for _ in range(2):
            await asyncio.gather(*(one_chat(client, text) for _ in range(streams)))
    await asyncio.sleep(SETTLE_S)
    start = serve_processes(root_pid) if root_pid else {}
    async with http_pool(streams) as http:
        client = ChatClient(f"{base_url.rstrip('/')}{route}", http=http, stream_timeout=timeout)
        began = time.monotonic()
        finished: list[tuple[float, ChatMarks]] = []

        series: dict[str, list[float]] = {}

        async def stream() -> None:
            while time.monotonic() - began < seconds:
                marks = await one_chat(client, text)
                finished.append((time.monotonic() - began, marks))

        async def sample() -> None:
            while root_pid and time.monotonic() - began < seconds:
                await asyncio.sleep(min(window_s, max(0.0, seconds - (time.monotonic() - began))))
                for name, usage in serve_processes(root_pid).items():
                    series.setdefault(name, []).append(usage.rss_mb)

        await asyncio.gather(sample(), *(stream() for _ in range(streams)))
        elapsed = time.monotonic() - began
    await asyncio.sleep(SETTLE_S)
    end = serve_processes(root_pid) if root_pid else {}
    windows = []
    edge = window_s
    while edge - window_s < elapsed:
        inside = [m for at, m in finished if edge - window_s <= at < edge]
        windows.append(_window(inside, min(edge, elapsed)))
        edge += window_s
    codes = error_codes(m for _, m in finished)
    return SoakResult(
        streams=streams,
        seconds=round(elapsed, 1),
        chats=len(finished),
        errors=sum(codes.values()),
        error_codes=codes,
        windows=windows,
        start=start,
        end=end,
        rss_series=series,
    )


def describe(result: SoakResult) -> list[str]:
    """Lines for people: the windows, then the processes."""
    lines = [
        f"{w.ends_at_s:>7.0f} s: {w.finished} chats, {w.errors} errors, first event p50 "
        f"{w.first_event_p50_ms} ms p99 {w.first_event_p99_ms} ms, done p50 {w.done_p50_ms} ms "
        f"p99 {w.done_p99_ms} ms"
        for w in result.windows
    ]
    growth, fds = result.rss_growth_pct(), result.fd_growth()
    for name, usage in sorted(result.start.items()):
        if name in result.end:
            end = result.end[name]
            trend = " ".join(f"{mb:.0f}" for mb in result.rss_series.get(name, []))
            lines.append(
                f"{name}: RSS {usage.rss_mb} -> {end.rss_mb} MiB ({growth[name]:+}%; per window: {trend}), "
                f"fds {usage.open_fds} -> {end.open_fds} ({fds[name]:+})"
            )
    lines.append(
        f"{result.chats} chats in {result.seconds} s with {result.streams} streams, {result.errors} errors"
    )
    return lines


def main() -> None:
    """Command line: ``python -m bench.soak --help``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base-url", default=None, help="a running stack (default: start one)")
    parser.add_argument(
        "--root-pid", type=int, default=None, help="with --base-url: the stack's root process"
    )
    parser.add_argument("--config", default="serve_config.yaml", help="the config of the stack it starts")
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--window-s", type=float, default=60)
    parser.add_argument(
        "--fd-slack",
        type=int,
        default=FD_SLACK,
        help="descriptors a process may gain (pooled connections open and close with the traffic)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    def go(base_url: str, root_pid: int | None) -> SoakResult:
        return asyncio.run(
            soak(
                base_url,
                streams=args.streams,
                seconds=args.minutes * 60,
                window_s=args.window_s,
                root_pid=root_pid,
            )
        )

    if args.base_url:
        result = go(args.base_url, args.root_pid)
    else:
        with offline_stack(args.config, ready_routes=(ROUTE,)) as stack:
            result = go(stack.base_url, stack.pid)
    args.output.write_text(json.dumps(result.as_json(), indent=2) + "\n")
    for line in describe(result):
        logger.info(line)
    missed = result.missed(fd_slack=args.fd_slack)
    if missed:
        logger.info("targets missed: %s", "; ".join(missed))
    else:
        logger.info(
            "targets met: 0 errors, RSS growth <= %.0f %%, descriptors +%d at most",
            RSS_GROWTH_LIMIT_PCT,
            args.fd_slack,
        )
    logger.info("written to %s", args.output)
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
