"""A test-only agent whose tools come from the probe MCP server at /mcp-probe."""

from agent_runtime.chat_app import chat_app_builder
from agent_runtime.mcp_tools import MCPServers
from agent_runtime.spec import AgentSpec

SPEC = AgentSpec(
    name="probe",
    system_prompt="You are a text utility assistant. Use your tools to transform text.",
    tools=MCPServers({"probe": "/mcp-probe/mcp"}),
)

build_app = chat_app_builder(SPEC)
