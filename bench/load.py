"""Concurrent chats against a running stack (start one first: ``OFFLINE=1 make run-multi``).

For each concurrency level (1, 10, 50 by default) it keeps that many weather chats in flight until
``--requests`` chats have finished, and prints: errors (by code), throughput (finished chats per
second), p50/p99 of the first event (``metadata``) and p99 of ``done``. It also times each tool call
as the client sees it (``tool_call`` to its ``tool_result``), which :mod:`bench.mcp_ratio` compares with
the same call on an open MCP session. Figures only: nothing here passes or fails.

    .venv/bin/python -m bench.load --base-url http://127.0.0.1:8000 --levels 1,10,50 --requests 100
"""

import argparse
import asyncio
import json
import logging
import math
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from protocols.chat_client import ChatClient, ChatClientError
from protocols.events import Done, Error, Metadata, ToolCall, ToolResult

logger = logging.getLogger("bench.load")

DEFAULT_TEXT = "What is the weather in Seattle this week?"


@dataclass
class ChatMarks:
    """What one chat did, in seconds from its request."""

    first_event: float | None = None
    done: float | None = None
    error: str | None = None
    tool_calls: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the chat ended with ``done`` and no error."""
        return self.error is None and self.done is not None


def error_codes(marks: Iterable[ChatMarks]) -> dict[str, int]:
    """How many chats failed, by error code (``no_done``: the stream ended without ``done``)."""
    return dict(Counter(m.error or "no_done" for m in marks if not m.ok))


@dataclass
class LevelResult:
    """The figures of one concurrency level."""

    concurrency: int
    requests: int
    errors: int
    error_codes: dict[str, int]
    elapsed_s: float
    throughput_per_s: float
    first_event_p50_s: float | None
    first_event_p99_s: float | None
    done_p50_s: float | None
    done_p99_s: float | None
    tool_call_p50_s: float | None


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by the nearest-rank method; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


async def one_chat(client: ChatClient, text: str) -> ChatMarks:
    """Run one chat on a new thread and mark its events (a failed chat has ``error`` set)."""
    marks = ChatMarks()
    started: dict[str, tuple[str, dict[str, Any], float]] = {}
    start = time.perf_counter()
    try:
        async for event in client.stream(text, thread_id=f"bench-{uuid.uuid4().hex[:12]}"):
            now = time.perf_counter() - start
            if marks.first_event is None:
                marks.first_event = now
            if isinstance(event, ToolCall):
                started[event.id] = (event.name, event.args, now)
            elif isinstance(event, ToolResult) and event.id in started:
                name, args, at = started.pop(event.id)
                marks.tool_calls.append((name, args, now - at))
            elif isinstance(event, Error):
                marks.error = event.code
                logger.warning("chat failed: %s (%s)", event.message, event.code)
            elif isinstance(event, Done) and marks.error is None:
                marks.done = now
            elif isinstance(event, Metadata):
                pass
    except ChatClientError as exc:
        marks.error = exc.code
        logger.warning("chat failed: %s (%s)", exc, exc.code)
    return marks


async def run_level(
    client: ChatClient, text: str, concurrency: int, requests: int
) -> tuple[LevelResult, list[ChatMarks]]:
    """Keep ``concurrency`` chats in flight until ``requests`` have finished."""
    semaphore = asyncio.Semaphore(concurrency)

    async def guarded() -> ChatMarks:
        async with semaphore:
            return await one_chat(client, text)

    start = time.perf_counter()
    marks = await asyncio.gather(*(guarded() for _ in range(requests)))
    elapsed = time.perf_counter() - start
    ok = [m for m in marks if m.ok]
    first = [m.first_event for m in marks if m.first_event is not None]
    done = [m.done for m in ok if m.done is not None]
    tool = [t for m in ok for _, _, t in m.tool_calls]
    result = LevelResult(
        concurrency=concurrency,
        requests=requests,
        errors=requests - len(ok),
        error_codes=error_codes(marks),
        elapsed_s=round(elapsed, 2),
        throughput_per_s=round(len(ok) / elapsed, 3),
        first_event_p50_s=_round(percentile(first, 0.5)),
        first_event_p99_s=_round(percentile(first, 0.99)),
        done_p50_s=_round(percentile(done, 0.5)),
        done_p99_s=_round(percentile(done, 0.99)),
        tool_call_p50_s=_round(statistics.median(tool) if tool else None),
    )
    return result, list(marks)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def describe(result: LevelResult) -> str:
    """One line per level, for people."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f} ms"

    codes = ", ".join(f"{k}: {v}" for k, v in sorted(result.error_codes.items())) or "none"
    return (
        f"concurrency {result.concurrency:>3}: {result.requests} chats, {result.errors} errors ({codes}), "
        f"{result.throughput_per_s:.2f} chats/s, first event p50 {ms(result.first_event_p50_s)} "
        f"p99 {ms(result.first_event_p99_s)}, done p50 {ms(result.done_p50_s)} p99 {ms(result.done_p99_s)}, "
        f"tool call p50 {ms(result.tool_call_p50_s)}"
    )


def http_pool(concurrency: int) -> httpx.AsyncClient:
    """An HTTP pool that holds ``concurrency`` streams at once."""
    size = concurrency + 10
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=size, max_keepalive_connections=size))


async def run(base_url: str, route: str, text: str, levels: list[int], requests: int) -> list[LevelResult]:
    """Every level in turn, each after one warm-up chat (tool discovery, connections)."""
    results: list[LevelResult] = []
    url = f"{base_url.rstrip('/')}{route}"
    timeout = httpx.Timeout(300, connect=30)  # a chat that sends nothing for five minutes has failed
    for level in levels:
        async with http_pool(level) as http:
            client = ChatClient(url, http=http, stream_timeout=timeout)
            warm = await one_chat(client, text)
            if warm.error:
                logger.warning("warm-up chat failed (%s)", warm.error)
            count = requests if level > 1 else min(requests, 20)
            result, _ = await run_level(client, text, level, max(count, level))
        logger.info(describe(result))
        results.append(result)
    return results


def main() -> None:
    """Command line: ``python -m bench.load --help``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--route", default="/weather-agent")
    parser.add_argument("--text", default=DEFAULT_TEXT)
    parser.add_argument("--levels", default="1,10,50", help="concurrency levels, comma-separated")
    parser.add_argument("--requests", type=int, default=100, help="chats per level (20 at level 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    results = asyncio.run(run(args.base_url, args.route, args.text, levels, args.requests))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")


if __name__ == "__main__":
    main()
