"""One trace per request across every service, on the real stack.

The whole multi-agent config is deployed with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a real OTLP/HTTP
receiver in this process (tests/support/otlp.py), as an operator points it at a collector or a trace UI.
"""

import time
from collections.abc import Iterator

import pytest

from platform_core.serve_config import for_local_run, load_config
from protocols.events import Done, Metadata, ToolResult
from tests.support.otlp import OTLPReceiver, ReceivedSpan, create_otlp_receiver
from tests.support.servers import ServerThread
from tests.support.stack import ROOT, ServeStack, chat, deployed_over

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

TRIP = "Plan a 3-day trip to Lisbon next week."
AGENTS = ("weather", "research", "packing", "travel")
# The services a travel request reaches (the MCP servers over sessions kept across runs: each call
# carries the run's trace in its _meta).
SERVICES = {"travel_agent", "a2a_weather", "a2a_research", "a2a_packing", "weather_agent", "research_agent"}
SERVICES |= {"packing_agent", "llm", "mcp_weather", "mcp_web_search"}


@pytest.fixture(scope="module")
def traced(serve_stack: ServeStack) -> Iterator[tuple[ServeStack, OTLPReceiver]]:
    stack = serve_stack
    receiver = create_otlp_receiver()
    with ServerThread(receiver.app) as collector:
        config = for_local_run(
            load_config(ROOT / "serve_multi_config.yaml"),
            port=stack.port,
            offline=True,
            env={
                "PYTHONPATH": str(ROOT),
                "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
                "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within a moment, not the default 5 s
            },
        )
        ready = [route for agent in AGENTS for route in (f"/{agent}-agent", f"/a2a-{agent}")]
        with deployed_over(stack, config, ready):  # every app (re)starts with the exporter configured
            yield stack, receiver


def roots_of(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    """The spans whose parent is not in ``spans``."""
    ids = {s.span_id for s in spans}
    return [s for s in spans if s.parent_span_id not in ids]


def spans_of(receiver: OTLPReceiver, trace_id: str, services: set[str]) -> list[ReceivedSpan]:
    """The trace's spans, once every one of ``services`` has sent some and the trace has one root.

    Export is batched per process: a parent span (the run's, the request's) ends after its children and
    may arrive a batch later.
    """
    deadline = time.monotonic() + 60
    while True:
        spans = [s for s in receiver.spans if s.trace_id == trace_id]
        complete = services <= {s.service for s in spans} and len(roots_of(spans)) == 1
        if complete or time.monotonic() > deadline:
            return spans
        time.sleep(0.5)


def test_a_travel_request_is_one_connected_trace_across_every_service(traced) -> None:
    stack, receiver = traced
    response, events = chat(stack, "/travel-agent", {"user_request": TRIP}, timeout=300)
    assert response.status_code == 200 and isinstance(events[-1], Done)
    trace_id = response.headers["x-trace-id"]
    assert isinstance(events[0], Metadata) and events[0].trace_id == trace_id
    assert {e.name: e.status for e in events if isinstance(e, ToolResult)} == dict.fromkeys(
        ("a2a_weather", "a2a_research", "a2a_packing"), "ok"
    )

    spans = spans_of(receiver, trace_id, SERVICES)
    assert SERVICES <= {s.service for s in spans}, sorted({s.service for s in spans})
    # Connected: every span's parent is in the trace, but the one request's span at the travel agent.
    roots = roots_of(spans)
    assert [(r.service, r.parent_span_id) for r in roots] == [("travel_agent", "")], roots

    runs = {s.service: s for s in spans if s.name.startswith("agent.run ")}
    assert set(runs) == {"travel_agent", "weather_agent", "research_agent", "packing_agent"}
    assert runs["travel_agent"].attributes["agent.outcome"] == "ok"
    delegations = {
        s.attributes["gen_ai.tool.name"]: s for s in spans if s.name.startswith("execute_tool a2a_")
    }
    assert set(delegations) == {"a2a_weather", "a2a_research", "a2a_packing"}
    assert all(s.parent_span_id == runs["travel_agent"].span_id for s in delegations.values())
    assert all(s.attributes["agent.tool.status"] == "ok" for s in delegations.values())
    # Each delegated run hangs below the travel run (through its A2A app's task).
    parents = {s.span_id: s.parent_span_id for s in spans}

    def ancestors(span: ReceivedSpan) -> set[str]:
        found, current = set(), span.parent_span_id
        while current in parents:
            found.add(current)
            current = parents[current]
        return found

    tasks = {s.service: s for s in spans if s.name == "a2a.task"}
    for name, agent in (
        ("a2a_weather", "weather_agent"),
        ("a2a_research", "research_agent"),
        ("a2a_packing", "packing_agent"),
    ):
        assert runs["travel_agent"].span_id in ancestors(tasks[name]), name
        assert tasks[name].span_id in ancestors(runs[agent]), name
        assert (
            tasks[name].attributes["a2a.task.state"] == "completed" and tasks[name].attributes["a2a.task.id"]
        )
    # The MCP tools ran in the trace too, each below the run that called it (the packing agent's MAF
    # MCP tool sends the trace context in _meta as well).
    callers = {"mcp_weather": ("weather_agent", "packing_agent"), "mcp_web_search": ("research_agent",)}
    for service, agents in callers.items():
        executions = [s for s in spans if s.service == service and s.name.startswith("execute_tool ")]
        below = {agent: [s for s in executions if runs[agent].span_id in ancestors(s)] for agent in agents}
        assert all(below.values()) and sum(map(len, below.values())) == len(executions), (service, below)
    # Every model call: a GenAI span of the llm service, with its model and tokens, below the client span
    # of the agent's HTTP call.
    model_calls = [s for s in spans if s.service == "llm" and s.name.startswith("chat ")]
    assert len(model_calls) >= 8, len(model_calls)  # the travel run's two and each delegate's
    by_id = {s.span_id: s for s in spans}
    for call in model_calls:
        client = by_id[call.parent_span_id]
        while client.service == "llm":  # up to the first span outside the llm app: the caller's
            client = by_id[client.parent_span_id]
        assert client.name == "POST" and str(client.attributes["url.full"]).endswith(
            "/llm/v1/chat/completions"
        )
        assert client.attributes["http.response.status_code"] == 200
    for call in model_calls:
        assert call.attributes["gen_ai.operation.name"] == "chat" and call.attributes["gen_ai.request.model"]
        assert (
            call.attributes["gen_ai.usage.input_tokens"] > 0
            and call.attributes["gen_ai.usage.output_tokens"] > 0
        )
