"""A real OTLP/HTTP trace receiver for tests: ``POST /v1/traces`` (protobuf), spans kept in a list.

It decodes what any OpenTelemetry SDK exports (``ExportTraceServiceRequest``, the collector's wire
format), so a test sees exactly what a collector or a trace UI would receive.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.servers import ServerThread


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, object]


@dataclass
class OTLPReceiver:
    app: Starlette
    spans: list[ReceivedSpan] = field(default_factory=list)


def _value(any_value: object) -> object:
    kind = any_value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(any_value, kind) if kind else None


def create_otlp_receiver() -> OTLPReceiver:
    receiver = OTLPReceiver(app=Starlette())

    async def traces(request: Request) -> Response:
        export = ExportTraceServiceRequest.FromString(await request.body())
        for resource_spans in export.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    receiver.spans.append(
                        ReceivedSpan(
                            service=str(resource.get("service.name")),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        body = ExportTraceServiceResponse().SerializeToString()
        return Response(body, media_type="application/x-protobuf")

    receiver.app.router.routes.append(Route("/v1/traces", traces, methods=["POST"]))
    return receiver


@contextmanager
def tracing_into_receiver(monkeypatch: pytest.MonkeyPatch, service_name: str) -> Iterator[OTLPReceiver]:
    """This process's tracing on, exporting to a receiver of its own; flushed and off again on exit."""
    from platform_core import telemetry

    receiver = create_otlp_receiver()
    with ServerThread(receiver.app) as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        telemetry.use_provider(None)
        assert telemetry.setup_tracing(service_name)
        try:
            yield receiver
            assert telemetry.flush_traces()
        finally:
            telemetry.shutdown_tracing()
