"""Trace context across hops (platform_core.telemetry), tracing off and on, over real loopback HTTP.

Two apps behind :class:`TracingMiddleware`, the upper one calling the lower one with the platform's
httpx hook, as an agent calls /llm or an A2A app; with tracing on, the spans go to a real OTLP/HTTP
receiver (tests/support/otlp.py).
"""

import re
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from platform_core import telemetry
from tests.support.otlp import tracing_into_receiver
from tests.support.servers import ServerThread, closed_port_url

INCOMING = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def hop_app(downstream: str | None) -> Starlette:
    """``GET /work``: the traceparent it received, and what ``downstream``'s ``/work`` answered."""
    http = httpx.AsyncClient(event_hooks=telemetry.TRACE_HOOKS, timeout=30)

    async def work(request: Request) -> JSONResponse:
        below = (await http.get(f"{downstream}/work")).json() if downstream else None
        return JSONResponse({"traceparent": request.headers.get("traceparent"), "below": below})

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"ready": True})

    return Starlette(
        routes=[Route("/work", work), Route("/health", health)],
        middleware=[Middleware(telemetry.TracingMiddleware)],
    )


@pytest.fixture
def hops() -> Iterator[str]:
    """The upper app's URL; it calls the lower one."""
    with ServerThread(hop_app(None)) as lower, ServerThread(hop_app(lower.url)) as upper:
        yield upper.url


def trace_id_in(traceparent: str) -> str:
    return traceparent.split("-")[1]


@pytest.fixture
def off(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENDPOINTS:
        monkeypatch.delenv(name, raising=False)
    telemetry.use_provider(None)
    assert not telemetry.setup_tracing("hops")


def test_off_every_request_gets_a_trace_id_that_every_hop_carries(off: None, hops: str) -> None:
    response = httpx.get(f"{hops}/work", timeout=30)
    trace_id = response.headers["x-trace-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and trace_id != "0" * 32
    assert trace_id_in(response.json()["below"]["traceparent"]) == trace_id
    other = httpx.get(f"{hops}/work", timeout=30).headers["x-trace-id"]
    assert other != trace_id, "each request starts its own trace"

    # The caller's trace is honoured, to the last hop.
    honoured = httpx.get(f"{hops}/work", headers={"traceparent": INCOMING}, timeout=30)
    assert honoured.headers["x-trace-id"] == "ab" * 16
    assert trace_id_in(honoured.json()["below"]["traceparent"]) == "ab" * 16
    assert "x-trace-id" not in httpx.get(f"{hops}/health", timeout=30).headers


def test_on_the_spans_of_both_hops_reach_an_otlp_endpoint_as_one_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with tracing_into_receiver(monkeypatch, "hops") as receiver:
        with ServerThread(hop_app(None)) as lower, ServerThread(hop_app(lower.url)) as upper:
            response = httpx.get(f"{upper.url}/work", headers={"traceparent": INCOMING}, timeout=30)
    assert response.headers["x-trace-id"] == "ab" * 16
    spans = [s for s in receiver.spans if s.trace_id == "ab" * 16]
    assert len(spans) == 3, receiver.spans
    assert {s.service for s in spans} == {"hops"}  # outside a Serve replica: the name given
    upper_span = next(s for s in spans if s.parent_span_id == "cd" * 8)  # the caller's span is its parent
    # The upper app's call is a client span of its own, and the lower app's span its child.
    client_span = next(s for s in spans if s.parent_span_id == upper_span.span_id)
    lower_span = next(s for s in spans if s.parent_span_id == client_span.span_id)
    assert lower_span.name == "GET /" and lower_span.attributes["url.path"] == "/work"
    assert client_span.name == "GET" and client_span.attributes["url.full"] == f"{lower.url}/work"
    assert client_span.attributes["http.response.status_code"] == 200
    assert client_span.attributes["server.address"] == "127.0.0.1"
    assert upper_span.name == "GET /" and upper_span.attributes["http.response.status_code"] == 200
    assert upper_span.attributes["url.path"] == "/work"


def test_an_unreachable_exporter_never_fails_a_request(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", closed_port_url())
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    telemetry.use_provider(None)
    assert telemetry.setup_tracing("hops")
    try:
        with ServerThread(hop_app(None)) as lower, ServerThread(hop_app(lower.url)) as upper:
            for _ in range(2):
                assert httpx.get(f"{upper.url}/work", timeout=30).status_code == 200
                telemetry.flush_traces()
    finally:
        telemetry.shutdown_tracing()
    export_warnings = [r for r in caplog.records if r.name.startswith("opentelemetry") and r.levelno >= 30]
    assert len(export_warnings) == 1, [r.getMessage() for r in export_warnings]  # one, not one per batch
