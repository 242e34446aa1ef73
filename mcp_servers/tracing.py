"""Each MCP tool execution as a span in the trace of the agent run that called it.

Agents keep an MCP session open across runs, so a call's HTTP request does not carry the run's trace
context; the call itself does, in its ``_meta`` (``traceparent``, :func:`platform_core.telemetry.
trace_carrier`). Here every ``tools/call`` of a server runs inside an ``execute_tool <name>`` span whose
parent comes from that ``_meta``: the run's span, on the agent's side. The tool's own HTTP calls to its
upstream API then carry the same trace on (``mcp_servers.http_upstream``).
"""

from typing import Any

import mcp.types as types
from mcp.server.fastmcp import FastMCP
from opentelemetry.trace import StatusCode

from platform_core.telemetry import server_span


def trace_tool_calls(server: FastMCP) -> None:
    """Wrap ``server``'s ``tools/call`` handler: each call in its span (see the module docstring)."""
    # FastMCP exposes no hook around a tool call; its low-level server's handler table is the seam.
    handlers = server._mcp_server.request_handlers
    call_tool = handlers[types.CallToolRequest]

    async def traced(request: types.CallToolRequest) -> Any:
        meta = request.params.meta
        carrier = {k: str(v) for k, v in (meta.model_dump() if meta is not None else {}).items()}
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": request.params.name,
            "mcp.server.name": server.name,
        }
        with server_span(f"execute_tool {request.params.name}", carrier, attributes) as span:
            result = await call_tool(request)
            failed = isinstance(result, types.ServerResult) and getattr(result.root, "isError", False)
            span.set_attribute("agent.tool.status", "error" if failed else "ok")
            if failed:
                span.set_status(StatusCode.ERROR)
            return result

    handlers[types.CallToolRequest] = traced
