"""Latency and throughput of `/chat` on a running stack (start it first: ``OFFLINE=1 make run``).

Prints time to metadata, time to first token, total time per request (p50/p95/max) and requests per
second for N concurrent streams. Figures only: nothing here passes or fails.
"""

import argparse
import asyncio
import logging
import statistics
import time

import httpx

from protocols.chat_client import ChatClient, ChatClientError
from protocols.events import Done, Error, Metadata, Token

logger = logging.getLogger("bench")


async def one_chat(client: ChatClient, text: str) -> dict[str, float]:
    """Seconds from the request to its first ``metadata``, first ``token`` and ``done``; a chat that
    failed (refused, cut, or ended with an ``error`` event) is logged and has no ``done`` mark."""
    start = time.perf_counter()
    marks: dict[str, float] = {}
    try:
        async for event in client.stream(text):
            now = time.perf_counter() - start
            if isinstance(event, Metadata):
                marks.setdefault("metadata", now)
            elif isinstance(event, Token):
                marks.setdefault("first_token", now)
            elif isinstance(event, Error):
                logger.warning("chat failed: %s (%s)", event.message, event.code)
                marks["failed"] = now
            elif isinstance(event, Done) and "failed" not in marks:
                marks["done"] = now
    except ChatClientError as exc:
        logger.warning("chat failed: %s (%s)", exc, exc.code)
        marks["failed"] = time.perf_counter() - start
    return marks


def summary(name: str, values: list[float]) -> str:
    values = sorted(values)
    p95 = values[max(0, int(round(0.95 * len(values))) - 1)]
    p50, top = statistics.median(values), values[-1]
    return f"{name:>12}: p50 {p50 * 1000:8.1f} ms  p95 {p95 * 1000:8.1f} ms  max {top * 1000:8.1f} ms"


async def run(base_url: str, route: str, text: str, requests: int, concurrency: int) -> None:
    agent_url = f"{base_url.rstrip('/')}{route}"
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=max(100, concurrency + 10))
    stream_timeout = httpx.Timeout(300, connect=10)  # a chat that sends nothing for 5 minutes has failed
    async with (
        httpx.AsyncClient(limits=limits) as http,
        ChatClient(agent_url, http=http, stream_timeout=stream_timeout) as client,
    ):
        await one_chat(client, text)  # warm-up: tool discovery, model id, connections

        async def guarded() -> dict[str, float]:
            async with semaphore:
                return await one_chat(client, text)

        start = time.perf_counter()
        results = await asyncio.gather(*(guarded() for _ in range(requests)))
        elapsed = time.perf_counter() - start
    failed = sum("failed" in r for r in results)
    logger.info("%d requests (%d failed), concurrency %d, %s/chat", requests, failed, concurrency, agent_url)
    for key in ("metadata", "first_token", "done"):
        values = [r[key] for r in results if key in r]
        if values:
            logger.info(summary(key, values))
    logger.info("  throughput: %.2f requests/s", requests / elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--route", default="/weather-agent")
    parser.add_argument("--text", default="What is the weather in Seattle this week?")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(run(args.base_url, args.route, args.text, args.requests, args.concurrency))


if __name__ == "__main__":
    main()
