"""An agent run's tool calls as spans: one ``execute_tool`` span per call, from its event to its result.

Both runners report tool calls as ``tool_call`` / ``tool_result`` events through the shared run loop,
so spans made from those events cover every framework alike. Names and attributes follow the
OpenTelemetry GenAI conventions (``gen_ai.operation.name = execute_tool``, ``gen_ai.tool.name``,
``gen_ai.tool.call.id``), plus ``agent.tool.status`` (``ok`` / ``error``). Only while tracing is on
(:func:`platform_core.telemetry.tracing_on`); off, nothing is made.
"""

from opentelemetry import trace
from opentelemetry.trace import Span, StatusCode

from platform_core.telemetry import tracer, tracing_on
from protocols.events import ChatEvent, ToolCall, ToolResult


class ToolSpans:
    """The open tool-call spans of one run, children of the run's span."""

    def __init__(self, run_span: Span) -> None:
        self._parent = trace.set_span_in_context(run_span)
        self._open: dict[str, Span] = {}
        self._on = tracing_on()

    def observe(self, event: ChatEvent) -> None:
        """Open a span at a ``tool_call``, end it at its ``tool_result``."""
        if not self._on:
            return
        if isinstance(event, ToolCall):
            attributes = {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": event.name,
                "gen_ai.tool.call.id": event.id,
            }
            self._open[event.id] = tracer().start_span(
                f"execute_tool {event.name}", context=self._parent, attributes=attributes
            )
        elif isinstance(event, ToolResult) and (span := self._open.pop(event.id, None)) is not None:
            span.set_attribute("agent.tool.status", event.status)
            if event.status == "error":
                span.set_status(StatusCode.ERROR)
            span.end()

    def close(self) -> None:
        """End the spans of calls that never got a result (the run stopped first)."""
        for span in self._open.values():
            span.set_attribute("agent.tool.status", "unfinished")
            span.end()
        self._open.clear()
