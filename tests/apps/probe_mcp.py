"""A test-only MCP server whose tool set is a builder arg, so a test can add a tool to a running server."""

from mcp.server.fastmcp import FastMCP
from pydantic import Field
from ray.serve import Application

from mcp_servers.serving import MCPScalingArgs, build_mcp_app


class ProbeMCPArgs(MCPScalingArgs):
    tools: list[str] = Field(default_factory=lambda: ["echo_text"])


def echo_text(text: str) -> str:
    """Echo the given text back unchanged."""
    return text


def reverse_text(text: str) -> str:
    """Reverse the given text, character by character."""
    return text[::-1]


AVAILABLE = {tool.__name__: tool for tool in (echo_text, reverse_text)}


class ProbeServerFactory:
    """Picklable factory: Ray ships it to the replicas, which build the FastMCP there."""

    def __init__(self, tools: list[str]) -> None:
        self.tools = tools

    def __call__(self) -> FastMCP:
        server = FastMCP("probe")
        for name in self.tools:
            server.tool()(AVAILABLE[name])
        return server


def build_app(args: ProbeMCPArgs) -> Application:
    return build_mcp_app(ProbeServerFactory(args.tools), name="ProbeMCP", scaling=args)
