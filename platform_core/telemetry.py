"""Traces for every app: OpenTelemetry from the standard ``OTEL_*`` variables, W3C trace context on hops.

Tracing is **on** when an OTLP endpoint is configured (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), unless ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none``. Then each process gets an SDK tracer provider whose ``service.name`` is
its Serve application's name (``llm``, ``weather_agent``, ``a2a_travel``, ...), a batch span processor
and the OTLP/HTTP exporter, which reads the rest of its settings (headers, timeout, ``OTEL_TRACES_SAMPLER``
...) from the environment itself. Export runs on the processor's thread: an unreachable or wrong
endpoint never fails or slows a request; its spans are dropped with one warning in the log.

**Off** (no endpoint), the SDK is not even imported. A trace id flows all the same: every request gets
one, the caller's (an incoming ``traceparent`` is honoured) or a fresh random one, and every outgoing
hop carries it on, so the ``metadata`` event's ``trace_id`` and the ``X-Trace-Id`` header name one
request the same way in every app it reaches.

Two pieces do the work: :class:`TracingMiddleware` (ASGI; the request's server span, made current for
everything the request does) and :data:`TRACE_HOOKS` (httpx hooks: the context as ``traceparent`` on
outgoing calls, each in a client span of its own while tracing is on). A message sent on a connection
that outlives the request (an MCP session) carries the context in its own metadata instead:
:func:`trace_carrier`.
"""

import logging
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, StatusCode, TraceFlags
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_core.api_errors import relative_path
from platform_core.logs import route_into_serve_logs

logger = logging.getLogger(__name__)

TRACER_NAME = "ray_agent_platform"
TRACE_ID_HEADER = "X-Trace-Id"
_EXPORT_LOGGERS = ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "opentelemetry.sdk.trace.export")

_provider: trace.TracerProvider | None = None  # this process's SDK provider, once set up


def tracing_configured(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces to be exported (see the module docstring)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def _service_name(default: str) -> str:
    """The Serve application's name when running in a replica, else ``default``."""
    try:
        from ray import serve

        return str(serve.get_replica_context().app_name or default)
    except Exception:  # noqa: BLE001 - outside a replica (tests, scripts): no replica context
        return default


class _FirstOnly(logging.Filter):
    """Lets the first record through, then nothing: a dead exporter says so once, not per batch."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if self.seen:
            return False
        self.seen = True
        return True


def setup_telemetry(default_service_name: str) -> bool:
    """An app's start-up: its logs into Serve's (:mod:`platform_core.logs`), then :func:`setup_tracing`."""
    route_into_serve_logs()
    return setup_tracing(default_service_name)


def setup_tracing(default_service_name: str) -> bool:
    """Set up this process's tracing once (a no-op when off or already done); whether it is on."""
    global _provider
    if _provider is not None:
        return True
    if not tracing_configured():
        return False
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    if protocol and protocol != "http/protobuf":
        logger.warning(
            "OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported here: exporting OTLP/HTTP (protobuf)", protocol
        )
    # Imported here: an app without an exporter never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    service = _service_name(default_service_name)
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    once = _FirstOnly()
    for name in _EXPORT_LOGGERS:
        logging.getLogger(name).addFilter(once)
    use_provider(provider)
    logger.info("tracing ON: service.name=%s, OTLP/HTTP export", service)
    return True


def use_provider(provider: trace.TracerProvider | None) -> None:
    """Make ``provider`` this process's tracer provider (None: tracing off again)."""
    global _provider
    _provider = provider


def flush_traces(timeout_ms: int = 10_000) -> bool:
    """Export the spans still buffered now; whether that finished (True when tracing is off)."""
    flush = getattr(_provider, "force_flush", None)
    return bool(flush(timeout_ms)) if flush is not None else True


def shutdown_tracing() -> None:
    """Export what is buffered and turn tracing off in this process (the SDK also does it at exit)."""
    shutdown = getattr(_provider, "shutdown", None)
    if shutdown is not None:
        shutdown()
    use_provider(None)


def tracer() -> trace.Tracer:
    """The platform's tracer: the SDK's when tracing is on, else the API's non-recording one."""
    if _provider is not None:
        return _provider.get_tracer(TRACER_NAME)
    return trace.get_tracer(TRACER_NAME)


def tracing_on() -> bool:
    """Whether spans are recorded and exported in this process."""
    return _provider is not None


def trace_id_of(span: Span) -> str | None:
    """The span's trace id as 32 hex characters (W3C), None for an invalid span."""
    context = span.get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _untraced_span(parent: otel_context.Context) -> Span:
    """With tracing off: a non-recording span in the caller's trace, or in a fresh one."""
    caller = trace.get_current_span(parent).get_span_context()
    trace_id = caller.trace_id if caller.is_valid else int.from_bytes(secrets.token_bytes(16), "big") or 1
    flags = caller.trace_flags if caller.is_valid else TraceFlags(TraceFlags.DEFAULT)
    span_id = int.from_bytes(secrets.token_bytes(8), "big") or 1
    return NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags))


@contextmanager
def server_span(
    name: str, headers: Mapping[str, str], attributes: dict[str, Any] | None = None
) -> Iterator[Span]:
    """The span of one incoming request, current inside the block: a child of the caller's ``traceparent``."""
    parent = propagate.extract(headers)
    if tracing_on():
        with tracer().start_as_current_span(
            name, context=parent, kind=SpanKind.SERVER, attributes=attributes
        ) as span:
            yield span
        return
    span = _untraced_span(parent)
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    try:
        yield span
    finally:
        otel_context.detach(token)


_CLIENT_SPAN = "platform_client_span"  # the request extension that holds a call's client span


async def inject_trace_context(request: httpx.Request) -> None:
    """An httpx request hook: the call's trace context as ``traceparent`` (and ``tracestate``).

    With tracing on, the call gets a client span (``GET``, ``POST`` ...; the URL, the server, the status)
    and the server's span becomes its child; :func:`end_client_span` ends it when the response's headers
    arrive. A call that gets no response (refused, timed out) leaves no client span: its caller's span
    (the tool call, the run) records the failure.
    """
    if not tracing_on():
        request.headers.update(trace_carrier())
        return
    attributes: dict[str, str | int] = {
        "http.request.method": request.method,
        "url.full": str(request.url.copy_with(query=None)),
        "server.address": request.url.host,
        "server.port": request.url.port or (443 if request.url.scheme == "https" else 80),
    }
    span = tracer().start_span(request.method, kind=SpanKind.CLIENT, attributes=attributes)
    request.extensions[_CLIENT_SPAN] = span
    propagate.inject(request.headers, context=trace.set_span_in_context(span))


async def end_client_span(response: httpx.Response) -> None:
    """An httpx response hook: end the call's client span with the response's status."""
    span = response.request.extensions.pop(_CLIENT_SPAN, None)
    if span is None:
        return
    span.set_attribute("http.response.status_code", response.status_code)
    if response.status_code >= 500:
        span.set_status(StatusCode.ERROR)
    span.end()


def trace_carrier() -> dict[str, str]:
    """The current trace context as a dict (``traceparent``), for a message's metadata (MCP ``_meta``)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


TRACE_HOOKS: dict[str, list[Any]] = {"request": [inject_trace_context], "response": [end_client_span]}
"""``event_hooks`` for an ``httpx.AsyncClient`` whose calls continue the current trace."""


class TracingMiddleware:
    """ASGI: each HTTP request but ``public_paths`` runs in its server span (see :func:`server_span`).

    The response carries the trace id in ``X-Trace-Id``; the span records the method, the path and
    the status.
    """

    def __init__(self, app: ASGIApp, *, public_paths: tuple[str, ...] = ("/health",)) -> None:
        self.app = app
        self.public_paths = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request inside its span."""
        if scope["type"] != "http" or relative_path(scope) in self.public_paths:
            await self.app(scope, receive, send)
            return
        path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        method = str(scope.get("method", "GET"))
        attributes = {"http.request.method": method, "url.path": path}
        with server_span(f"{method} {root or '/'}", headers, attributes) as span:
            trace_id = trace_id_of(span)

            async def send_with_trace_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", int(message["status"]))
                    if trace_id:
                        message.setdefault("headers", [])
                        header = (TRACE_ID_HEADER.lower().encode(), trace_id.encode())
                        message["headers"] = [*message["headers"], header]
                await send(message)

            await self.app(scope, receive, send_with_trace_id)
