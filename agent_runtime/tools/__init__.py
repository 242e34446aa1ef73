"""Where an agent's tools come from: the :class:`ToolSource` seam and its MCP and A2A sources."""

from agent_runtime.tools.a2a import A2AAgents
from agent_runtime.tools.mcp import MCPServers
from agent_runtime.tools.sources import (
    CombinedTools,
    RefreshingToolSource,
    SourceStatus,
    StaticTools,
    ToolSource,
)

__all__ = [
    "A2AAgents",
    "CombinedTools",
    "MCPServers",
    "RefreshingToolSource",
    "SourceStatus",
    "StaticTools",
    "ToolSource",
]
