"""mcp_servers.serving without Ray: the per-replica ASGI app over real HTTP, as the Serve proxy calls it."""

from collections.abc import Iterator

import httpx
import pytest
from mcp.server.fastmcp import FastMCP
from pydantic import ValidationError

from mcp_servers.serving import MCPScalingArgs, create_mcp_asgi_app, transport_security
from platform_core.admission import HEADROOM
from platform_core.settings import get_settings
from tests.support.servers import RoutePrefix, ServerThread, mcp_session, tool_text

PREFIX = "/mcp-echo"
MCP_POST_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


def echo_server() -> FastMCP:
    server = FastMCP("echo")

    @server.tool()
    def echo(text: str) -> str:
        """Repeat the text."""
        return text

    @server.tool()
    def shout(text: str) -> str:
        """Repeat the text in capitals."""
        return text.upper()

    return server


@pytest.fixture
def platform_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Lets a test set platform env vars; the cached settings are rebuilt around it."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def prefixed_app() -> Iterator[str]:
    """The echo server behind a route prefix, the way Serve exposes it."""
    with ServerThread(RoutePrefix(create_mcp_asgi_app(echo_server), PREFIX)) as served:
        yield served.url + PREFIX


async def test_mcp_served_at_prefix_mcp(prefixed_app: str) -> None:
    async with mcp_session(prefixed_app + "/mcp") as session:
        tools = await session.list_tools()
        assert sorted(tool.name for tool in tools.tools) == ["echo", "shout"]
        result = await session.call_tool("shout", {"text": "hello"})
    assert not result.isError
    assert tool_text(result) == "HELLO"


async def test_sessions_are_stateless(prefixed_app: str) -> None:
    """No session id: any replica can answer any request (the proxy does not pin sessions)."""
    async with httpx.AsyncClient() as client:
        response = await client.post(prefixed_app + "/mcp", json=INITIALIZE, headers=MCP_POST_HEADERS)
    assert response.status_code == 200
    assert "mcp-session-id" not in response.headers
    assert response.headers["content-type"].startswith("application/json")  # json_response default
    assert response.json()["result"]["serverInfo"]["name"] == "echo"


async def test_health_lists_tools(prefixed_app: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(prefixed_app + "/health")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "server": "echo",
        "tools": ["echo", "shout"],
        "config_version": None,
    }


async def test_only_the_exact_mcp_path_serves_mcp(prefixed_app: str) -> None:
    async with httpx.AsyncClient() as client:
        wrong = await client.post(prefixed_app + "/other", json=INITIALIZE, headers=MCP_POST_HEADERS)
        slash = await client.post(prefixed_app + "/mcp/", json=INITIALIZE, headers=MCP_POST_HEADERS)
    assert wrong.status_code == 404
    # Starlette redirects the trailing slash; the location keeps the route prefix.
    assert slash.status_code == 307
    assert slash.headers["location"].endswith(PREFIX + "/mcp")


async def test_unknown_host_is_rejected(prefixed_app: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            prefixed_app + "/mcp", json=INITIALIZE, headers=MCP_POST_HEADERS | {"host": "attacker.example"}
        )
    assert response.status_code == 421


def test_allowed_hosts_include_platform_urls_and_extras(platform_env: pytest.MonkeyPatch) -> None:
    platform_env.setenv("SERVE_BASE_URL", "http://serve-head.internal:8000")
    platform_env.setenv("PUBLIC_BASE_URL", "https://agents.example.com")
    security = transport_security(MCPScalingArgs(allowed_hosts=["mcp.example.org"]))
    assert security.enable_dns_rebinding_protection
    for host in (
        "127.0.0.1:*",
        "localhost:*",
        "serve-head.internal:*",
        "agents.example.com",
        "mcp.example.org",
    ):
        assert host in security.allowed_hosts
    assert "https://agents.example.com" in security.allowed_origins
    assert not transport_security(
        MCPScalingArgs(dns_rebinding_protection=False)
    ).enable_dns_rebinding_protection


@pytest.mark.parametrize(
    ("args", "host", "status"),
    [
        (MCPScalingArgs(), "serve-head.internal:8000", 200),  # the host of SERVE_BASE_URL
        (MCPScalingArgs(), "elsewhere.example:8000", 421),
        (MCPScalingArgs(allowed_hosts=["elsewhere.example:8000"]), "elsewhere.example:8000", 200),
        (MCPScalingArgs(dns_rebinding_protection=False), "anything.example", 200),
    ],
)
async def test_host_header_policy(
    platform_env: pytest.MonkeyPatch, args: MCPScalingArgs, host: str, status: int
) -> None:
    platform_env.setenv("SERVE_BASE_URL", "http://serve-head.internal:8000")
    with ServerThread(create_mcp_asgi_app(echo_server, args)) as served:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                served.url + "/mcp", json=INITIALIZE, headers=MCP_POST_HEADERS | {"host": host}
            )
    assert response.status_code == status


def test_scaling_bounds_are_validated() -> None:
    with pytest.raises(ValidationError, match="max_replicas"):
        MCPScalingArgs(min_replicas=5, max_replicas=2)


def test_scaling_options_autoscale_and_start_a_replica() -> None:
    options = MCPScalingArgs().deployment_options()
    assert options == {
        "ray_actor_options": {"num_cpus": 0.2},
        # 50 running + 64 waiting in the replica (its own admission) + headroom for health probes.
        "max_ongoing_requests": 50 + 64 + HEADROOM,
        "autoscaling_config": {
            "min_replicas": 1,
            "initial_replicas": 1,
            "max_replicas": 20,
            "target_ongoing_requests": 5,
            "upscale_delay_s": 30.0,
            "downscale_delay_s": 600.0,
        },
    }
    to_zero = MCPScalingArgs(min_replicas=0, max_replicas=2).deployment_options()["autoscaling_config"]
    assert to_zero["min_replicas"] == 0 and to_zero["initial_replicas"] == 1
    with pytest.raises(ValidationError, match="max_replica"):
        MCPScalingArgs.model_validate({"max_replica": 3})  # a typo fails the deploy


def test_factory_must_return_an_unserved_server() -> None:
    def used() -> FastMCP:
        server = echo_server()
        server.streamable_http_app()
        return server

    with pytest.raises(ValueError, match="streamable_http_app"):
        create_mcp_asgi_app(used)


async def test_a_tool_call_runs_in_the_trace_its_meta_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """A session outlives the run that calls a tool: the run's context travels in the call's _meta."""
    from tests.support.otlp import tracing_into_receiver

    with tracing_into_receiver(monkeypatch, "mcp_echo") as receiver:
        with ServerThread(RoutePrefix(create_mcp_asgi_app(echo_server), PREFIX)) as served:
            async with mcp_session(served.url + PREFIX + "/mcp") as session:
                run = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
                result = await session.call_tool("shout", {"text": "hi"}, meta={"traceparent": run})
                await session.call_tool("echo", {"text": "no trace of its own"})
        assert tool_text(result) == "HI"
    tools = {
        s.attributes["gen_ai.tool.name"]: s for s in receiver.spans if s.name.startswith("execute_tool ")
    }
    assert (tools["shout"].trace_id, tools["shout"].parent_span_id) == ("ab" * 16, "cd" * 8)
    assert tools["shout"].attributes["agent.tool.status"] == "ok" and tools["shout"].service == "mcp_echo"
    assert tools["echo"].trace_id != "ab" * 16 and tools["echo"].parent_span_id == ""  # a trace of its own
