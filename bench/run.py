"""``make bench``: start an offline stack of its own, measure it, write ``bench/results.json``.

Figures (printed, and written as JSON with the machine's core count):

- ``cold_start_s``: ``serve run`` of the whole config to every app ready (:mod:`bench.stack`);
- ``mcp_call_ratio``: an agent's MCP tool call over the same call on an open session
  (:mod:`bench.mcp_ratio`);
- ``hop_p50_ms``, ``proxy_only_p50_ms``: a trivial route through the proxy, the proxy alone
  (:mod:`bench.hops`);
- ``tracing_off_us_per_hop``, ``tracing_off_overhead_pct``: what tracing's instrumentation costs a hop
  while tracing is off, in microseconds and as a share of ``hop_p50_ms`` (:mod:`bench.tracing_cost`);
- ``token_relay_ratio``: a long answer's rate through an agent's ``/chat`` over its rate from ``/llm``;
- ``travel_ratio``: travel chats' median time to ``done`` on Serve over the same flow in one process
  (:mod:`bench.one_process`, started after the Serve stack has stopped);
- ``concurrency``: per level (1, 10, 50 weather chats in flight) errors, throughput, p50/p99 of the first
  event, p99 of ``done`` (:mod:`bench.load`; ``levels`` has every figure of a level);
- ``throughput_50_vs_1``: throughput with 50 chats in flight over throughput one at a time.

``--base-url`` measures a stack that is already running instead (no cold start, no one-process
baseline); ``--code-dir`` starts the stacks from another checkout (the code before a change, say).
Figures only: nothing here passes or fails.
"""

import argparse
import asyncio
import json
import logging
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import hops, tracing_cost
from bench.load import DEFAULT_TEXT, LevelResult, describe
from bench.load import run as run_levels
from bench.mcp_ratio import describe as describe_ratio
from bench.mcp_ratio import measure as measure_ratio
from bench.stack import REPO_ROOT, offline_stack, one_process_stack

logger = logging.getLogger("bench")

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results.json"


async def measure(base_url: str, levels: list[int], requests: int, ratio_chats: int) -> dict[str, Any]:
    """The figures of the module docstring but cold start and baseline, on the stack at ``base_url``."""
    ratio = await measure_ratio(base_url, chats=ratio_chats)  # first: a quiet stack, one replica each
    logger.info(describe_ratio(ratio))
    hop = await hops.hop_p50_ms(base_url)
    proxy_only = await hops.hop_p50_ms(base_url, route=hops.PROXY_ROUTE)
    logger.info("hop p50 %.2f ms (the proxy alone %.2f ms)", hop, proxy_only)
    tracing_us = await tracing_cost.us_per_hop()
    tracing_pct = round(tracing_us / (hop * 1000) * 100, 2) if hop else None
    logger.info("tracing off: %.1f us per hop, %s %% of a hop", tracing_us, tracing_pct)
    relay = await hops.token_relay(base_url)
    logger.info("token relay: %s", relay)
    travel = await hops.flow_p50_s(base_url)
    logger.info("travel flow on Serve: %s", travel)
    results = await run_levels(base_url, "/weather-agent", DEFAULT_TEXT, levels, requests)
    by_level: dict[int, LevelResult] = {r.concurrency: r for r in results}
    one, fifty = by_level.get(1), by_level.get(50)
    throughput_ratio = (
        round(fifty.throughput_per_s / one.throughput_per_s, 2)
        if one is not None and fifty is not None and one.throughput_per_s > 0
        else None
    )
    return {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cold_start_s": None,
        "hop_p50_ms": hop,
        "proxy_only_p50_ms": proxy_only,
        "tracing_off_us_per_hop": tracing_us,
        "tracing_off_overhead_pct": tracing_pct,
        "mcp_call_ratio": ratio.mcp_call_ratio,
        "mcp_tools": [asdict(t) for t in ratio.tools],
        **relay,
        "travel_ratio": None,
        "travel": {"serve": travel},
        "concurrency": [_issue_shape(r) for r in results],
        "levels": [asdict(r) for r in results],
        "throughput_50_vs_1": throughput_ratio,
    }


def _issue_shape(result: LevelResult) -> dict[str, Any]:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {
        "streams": result.concurrency,
        "throughput_rps": result.throughput_per_s,
        "p50_first_event_ms": ms(result.first_event_p50_s),
        "p99_first_event_ms": ms(result.first_event_p99_s),
        "p99_done_ms": ms(result.done_p99_s),
        "errors": result.errors,
    }


async def measure_baseline(base_url: str) -> dict[str, Any]:
    """On the one-process stack: the trivial route without proxy, and the travel flow."""
    hop = await hops.hop_p50_ms(base_url)
    travel = await hops.flow_p50_s(base_url)
    logger.info("one process: hop p50 %.2f ms, travel flow %s", hop, travel)
    return {"hop_p50_ms": hop, "travel": travel}


def main() -> None:
    """Command line: ``python -m bench.run --help``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base-url", default=None, help="a running stack (default: start one)")
    parser.add_argument("--code-dir", type=Path, default=REPO_ROOT, help="checkout whose stack to start")
    parser.add_argument("--config", default="serve_multi_config.yaml")
    parser.add_argument("--levels", default="1,10,50")
    parser.add_argument("--requests", type=int, default=100, help="chats per level (20 at level 1)")
    parser.add_argument("--ratio-chats", type=int, default=10)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]

    def go(base_url: str) -> dict[str, Any]:
        return asyncio.run(measure(base_url, levels, args.requests, args.ratio_chats))

    if args.base_url:
        figures = go(args.base_url)
    else:
        with offline_stack(args.config, code_dir=args.code_dir) as stack:
            figures = go(stack.base_url)
            figures["cold_start_s"] = stack.cold_start_s
        with one_process_stack(args.config, code_dir=args.code_dir) as baseline_stack:
            baseline = asyncio.run(measure_baseline(baseline_stack.base_url))
        baseline["cold_start_s"] = baseline_stack.cold_start_s
        figures["one_process"] = baseline
        serve_p50, one_p50 = figures["travel"]["serve"]["done_p50_s"], baseline["travel"]["done_p50_s"]
        if serve_p50 and one_p50:
            figures["travel_ratio"] = round(serve_p50 / one_p50, 2)
    figures["code_dir"] = str(args.code_dir.resolve())
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    for level in figures["levels"]:
        logger.info(describe(LevelResult(**level)))
    keys = (
        "cold_start_s",
        "hop_p50_ms",
        "tracing_off_overhead_pct",
        "mcp_call_ratio",
        "token_relay_ratio",
        "travel_ratio",
    )
    summary = ", ".join(f"{key} {figures.get(key)}" for key in (*keys, "throughput_50_vs_1"))
    logger.info("%s; written to %s", summary, args.output)


if __name__ == "__main__":
    main()
