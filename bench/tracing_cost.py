"""What tracing costs while it is off: the instrumentation of one hop, timed in process.

With no OTLP endpoint every request still passes :class:`~platform_core.telemetry.TracingMiddleware`
(a non-recording server span, the trace id as ``X-Trace-Id``) and every outgoing call the httpx hook
that writes ``traceparent``. :func:`us_per_hop` times a trivial ASGI route through an in-process httpx
transport with both (the platform's code, unchanged) and without them, in alternating rounds so that
drift hits both alike, and returns the difference of the medians in microseconds.

``run.py`` sets it against the cheapest hop of the same run, a trivial route through the Serve proxy
(``hop_p50_ms``): ``tracing_off_overhead_pct``. Every hop of a chat costs at least that hop, so a chat's
share is smaller still. Figures only: nothing here passes or fails.
"""

import statistics
import time

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from platform_core.telemetry import TRACE_HOOKS, TracingMiddleware


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def _app() -> Starlette:
    return Starlette(routes=[Route("/route", _ok)])


async def _median_s(http: httpx.AsyncClient, requests: int) -> float:
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        response = await http.get("/route")
        times.append(time.perf_counter() - start)
        response.raise_for_status()
    return statistics.median(times)


async def us_per_hop(*, rounds: int = 10, requests: int = 300) -> float:
    """The tracing-off instrumentation of one hop (server span + header + outgoing hook), in µs."""
    bare = httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://bench")
    traced = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=TracingMiddleware(_app())),
        base_url="http://bench",
        event_hooks=TRACE_HOOKS,
    )
    async with bare, traced:
        await _median_s(bare, 50)  # warm both paths up
        await _median_s(traced, 50)
        bare_s, traced_s = [], []
        for _ in range(rounds):
            bare_s.append(await _median_s(bare, requests))
            traced_s.append(await _median_s(traced, requests))
    return round((statistics.median(traced_s) - statistics.median(bare_s)) * 1e6, 1)
