"""A test-only agent whose tools come from the probe MCP server at /mcp-probe."""

from agent_runtime.chat.app import chat_app_builder
from agent_runtime.spec import AgentSpec
from agent_runtime.tools.mcp import MCPServers

SPEC = AgentSpec(
    name="probe",
    system_prompt="You are a text utility assistant. Use your tools to transform text.",
    tools=MCPServers({"probe": "/mcp-probe/mcp"}),
)

build_app = chat_app_builder(SPEC)
