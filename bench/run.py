"""``make bench``: start an offline stack of its own, measure it, write ``bench/results.json``.

Figures (printed, and written as JSON with the machine's core count):

- per concurrency level (1, 10, 50 weather chats in flight): errors by code, throughput, p50/p99 of the
  first event, p50/p99 of ``done`` (:mod:`bench.load`);
- ``throughput_50_vs_1``: throughput with 50 chats in flight over throughput one at a time;
- ``mcp_call_ratio``: an agent's MCP tool call over the same call on an open session
  (:mod:`bench.mcp_ratio`).

``--base-url`` measures a stack that is already running instead; ``--code-dir`` starts the stack from
another checkout (the code before a change, say). Figures only: nothing here passes or fails.
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

from bench.load import DEFAULT_TEXT, LevelResult, describe
from bench.load import run as run_levels
from bench.mcp_ratio import describe as describe_ratio
from bench.mcp_ratio import measure as measure_ratio
from bench.stack import REPO_ROOT, offline_stack

logger = logging.getLogger("bench")

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results.json"


async def measure(base_url: str, levels: list[int], requests: int, ratio_chats: int) -> dict[str, Any]:
    """Every figure of the module docstring, on the stack at ``base_url``."""
    ratio = await measure_ratio(base_url, chats=ratio_chats)  # first: a quiet stack, one replica each
    logger.info(describe_ratio(ratio))
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
        "levels": [asdict(r) for r in results],
        "throughput_50_vs_1": throughput_ratio,
        "mcp_call_ratio": ratio.mcp_call_ratio,
        "mcp_tools": [asdict(t) for t in ratio.tools],
    }


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
        with offline_stack(args.config, code_dir=args.code_dir) as base_url:
            figures = go(base_url)
    figures["code_dir"] = str(args.code_dir.resolve())
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    for level in figures["levels"]:
        logger.info(describe(LevelResult(**level)))
    logger.info(
        "throughput 50 vs 1: %s; mcp_call_ratio: %s; written to %s",
        figures["throughput_50_vs_1"],
        figures["mcp_call_ratio"],
        args.output,
    )


if __name__ == "__main__":
    main()
