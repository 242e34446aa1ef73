"""MCP tool discovery: late servers, refresh, failing servers, and the chat app following tool changes."""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from langchain_core.tools import BaseTool, tool
from ray import cloudpickle

from agent_runtime.chat.app import ChatAgentArgs, create_chat_app
from agent_runtime.llm_client import LLMClient
from agent_runtime.runner import AgentRunner
from agent_runtime.spec import AgentSpec
from agent_runtime.tools.mcp import MCPServers
from agent_runtime.tools.sources import CombinedTools, StaticTools, ToolSource
from platform_core.errors import ConfigurationError
from protocols.chat_client import ChatClient
from protocols.events import ToolResult
from tests.support.runtime import Playbook, Turn, create_playbook_llm, create_test_mcp_server
from tests.support.servers import ServerThread, free_port, serve_mcp

TEST_TOOLS = {"echo", "add", "fail", "slow"}


async def eventually(check: Callable[[], Awaitable[Any]], timeout_s: float = 15) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.2)


def names(tools: list[BaseTool]) -> set[str]:
    return {t.name for t in tools}


async def test_one_failing_server_does_not_hide_the_others() -> None:
    good = serve_mcp(create_test_mcp_server())
    try:
        servers = MCPServers({"good": f"{good.url}/mcp", "down": f"http://127.0.0.1:{free_port()}/mcp"})
        assert names(await servers.get_tools()) == TEST_TOOLS
        status = servers.status()
        assert status["good"].ok and set(status["good"].tools) == TEST_TOOLS
        assert not status["down"].ok and "ConnectError" in (status["down"].error or "")
    finally:
        good.stop()


async def test_server_that_starts_late_is_discovered_and_the_app_becomes_ready() -> None:
    fake = create_playbook_llm()
    llm = ServerThread(fake.app).start()
    port = free_port()
    spec = AgentSpec(name="late", system_prompt="-", tools=MCPServers({"t": f"http://127.0.0.1:{port}/mcp"}))
    app = ServerThread(create_chat_app(AgentRunner(spec, llm=LLMClient(f"{llm.url}/v1")))).start()
    mcp: ServerThread | None = None
    try:
        async with httpx.AsyncClient() as client:
            health = await client.get(f"{app.url}/health")
            assert health.status_code == 503 and health.json()["tools"] == []
            assert health.json()["llm"] is True and health.json()["sources"]["t"]["ok"] is False
            mcp = serve_mcp(create_test_mcp_server(), port=port)

            async def ready() -> bool:
                return (await client.get(f"{app.url}/health")).status_code == 200

            assert await eventually(ready)
            assert set((await client.get(f"{app.url}/health")).json()["tools"]) == TEST_TOOLS
    finally:
        for server in (app, llm, mcp):
            if server is not None:
                server.stop()


async def test_tool_added_to_a_running_server_reaches_the_agent() -> None:
    fake = create_playbook_llm()
    llm = ServerThread(fake.app).start()
    server = create_test_mcp_server()
    mcp = serve_mcp(server)
    spec = AgentSpec(
        name="growing", system_prompt="-", tools=MCPServers({"t": f"{mcp.url}/mcp"}, refresh_s=0.5)
    )
    tools = MCPServers({"t": f"{mcp.url}/mcp"}, refresh_s=0.5)  # the test's own view (its own event loop)
    app = ServerThread(create_chat_app(AgentRunner(spec, llm=LLMClient(f"{llm.url}/v1")))).start()
    try:
        assert names(await tools.get_tools()) == TEST_TOOLS

        @server.tool()
        def shout(text: str) -> str:
            """Upper-cases the text."""
            return text.upper()

        async def has_shout() -> bool:
            return "shout" in names(await tools.get_tools())

        assert await eventually(has_shout)

        request = f"shout {uuid.uuid4().hex[:6]}"
        fake.playbooks[request] = Playbook([Turn(tool_calls=[("shout", {"text": "hey"})]), Turn(text="HEY")])

        async def shout_offered_and_answered() -> list[ToolResult]:
            async with ChatClient(app.url) as agent:
                events = (await agent.send(request)).events
            return [e for e in events if isinstance(e, ToolResult) and e.status == "ok"]

        (result,) = await eventually(shout_offered_and_answered)
        assert result.content == "HEY"
        offered = {t["function"]["name"] for t in fake.requests[-1]["tools"]}
        assert offered == TEST_TOOLS | {"shout"}
    finally:
        for thread in (app, mcp, llm):
            thread.stop()


async def test_refresh_does_not_block_a_caller_that_has_tools() -> None:
    mcp = serve_mcp(create_test_mcp_server())
    tools = MCPServers({"t": f"{mcp.url}/mcp"}, refresh_s=0.1)
    try:
        assert names(await tools.get_tools()) == TEST_TOOLS
        mcp.stop()
        await asyncio.sleep(0.2)  # past refresh_s: this call starts a refresh
        assert names(await tools.get_tools()) == TEST_TOOLS  # stale tools kept, refresh in background
        # It returned before that refresh ran: the server is not yet known to be down.
        assert tools.status()["t"].ok
        assert tools._refreshing is not None and not tools._refreshing.done()

        async def marked_failing() -> bool:
            await tools.get_tools()
            return not tools.status()["t"].ok

        assert await eventually(marked_failing, timeout_s=5)
    finally:
        mcp.stop()


def test_overrides_replace_urls_and_reject_unknown_names() -> None:
    servers = MCPServers({"weather": "/mcp-weather/mcp", "web": "/mcp-web-search/mcp"}, refresh_s=30)
    changed = servers.with_overrides(urls={"web": "http://other:9000/mcp"}, refresh_s=5)
    assert isinstance(changed, MCPServers)
    assert changed.servers == {"weather": "/mcp-weather/mcp", "web": "http://other:9000/mcp"}
    assert changed.refresh_s == 5 and servers.refresh_s == 30
    assert servers.with_overrides() is servers and servers.with_overrides(urls={}) is servers
    with pytest.raises(ConfigurationError, match="no MCP server named"):
        servers.with_overrides(urls={"wether": "http://x/mcp"})
    with pytest.raises(ConfigurationError, match="takes no URL overrides"):
        StaticTools([]).with_overrides(urls={"x": "http://x/mcp"})
    combined = CombinedTools(servers, StaticTools([]))
    assert combined.endpoint_names == {"weather", "web"}
    moved = combined.with_overrides(urls={"web": "http://y/mcp"}, refresh_s=7)
    first = moved.sources[0]
    assert isinstance(first, MCPServers) and first.servers["web"] == "http://y/mcp" and first.refresh_s == 7
    with pytest.raises(ConfigurationError, match="no tool endpoint named"):
        combined.with_overrides(urls={"nope": "http://x/mcp"})


def test_routes_resolve_through_serve_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from platform_core.settings import get_settings

    monkeypatch.setenv("SERVE_BASE_URL", "http://proxy:8123")
    get_settings.cache_clear()
    try:
        status = MCPServers({"w": "/mcp-weather/mcp", "x": "https://tools.example/mcp"}).status()
        assert status["w"].url == "http://proxy:8123/mcp-weather/mcp"
        assert status["x"].url == "https://tools.example/mcp"
        with pytest.raises(ValueError, match="route starting with"):
            MCPServers({"bad": "mcp-weather/mcp"}).status()
    finally:
        get_settings.cache_clear()


async def test_declaration_pickles_without_its_runtime_state() -> None:
    mcp = serve_mcp(create_test_mcp_server())
    try:
        servers = MCPServers({"t": f"{mcp.url}/mcp"})
        await servers.get_tools()  # now holds tools, tasks and sessions' closures
        copy = cloudpickle.loads(cloudpickle.dumps(servers))
        assert copy.servers == servers.servers and copy.status()["t"].tools == []
        assert names(await copy.get_tools()) == TEST_TOOLS
    finally:
        mcp.stop()


async def test_combined_sources_skip_a_failing_source() -> None:
    class Broken(ToolSource):
        async def get_tools(self) -> list[BaseTool]:
            raise RuntimeError("boom")

    @tool
    def local_time() -> str:
        """The local time."""
        return "noon"

    combined = CombinedTools(Broken(), StaticTools([local_time]))
    assert names(await combined.get_tools()) == {"local_time"}
    assert combined.status()["local"].tools == ["local_time"]


class OnlyTools(ToolSource):
    """The least a source can be: it lists tools, nothing else."""

    def __init__(self, *tools: BaseTool) -> None:
        self.tools = list(tools)

    async def get_tools(self) -> list[BaseTool]:
        return self.tools


@tool
def upper(text: str) -> str:
    """Upper-cases the text."""
    return text.upper()


async def test_a_source_that_only_lists_tools_has_the_defaults() -> None:
    source = OnlyTools(upper)
    assert source.label == "OnlyTools" and source.endpoint_names == frozenset() and source.status() == {}
    assert source.with_overrides(refresh_s=5) is source
    await source.aclose()
    combined = CombinedTools(source, StaticTools([]))
    assert names(await combined.get_tools()) == {"upper"}
    assert combined.label == "CombinedTools(OnlyTools, StaticTools)"
    assert set(combined.status()) == {"local"}  # StaticTools' own entry; OnlyTools adds none
    await combined.aclose()
    with pytest.raises(TypeError):
        ToolSource()  # type: ignore[abstract]


async def test_a_minimal_source_serves_an_agent() -> None:
    fake = create_playbook_llm()
    llm = ServerThread(fake.app).start()
    spec = AgentSpec(name="minimal", system_prompt="-", tools=OnlyTools(upper))
    app = ServerThread(create_chat_app(AgentRunner(spec, llm=LLMClient(f"{llm.url}/v1")))).start()
    try:
        request = f"upper {uuid.uuid4().hex[:6]}"
        fake.playbooks[request] = Playbook([Turn(tool_calls=[("upper", {"text": "hey"})]), Turn(text="HEY")])
        async with ChatClient(app.url) as agent:
            health = await agent.health()
            events = (await agent.send(request)).events
        assert health["ready"] is True
        assert health["tools"] == ["upper"] and health["sources"] == {}
        results = [e for e in events if isinstance(e, ToolResult)]
        assert [(r.name, r.status, r.content) for r in results] == [("upper", "ok", "HEY")]
    finally:
        app.stop()
        llm.stop()


def test_builder_args_overrides_on_a_minimal_source() -> None:
    spec = AgentSpec(name="minimal", system_prompt="-", tools=OnlyTools(upper))
    assert AgentRunner.from_args(spec, ChatAgentArgs(tools_refresh_s=5)).tools is spec.tools
    with pytest.raises(ConfigurationError, match="OnlyTools takes no URL overrides"):
        AgentRunner.from_args(spec, ChatAgentArgs(mcp_urls={"weather": "http://x/mcp"}))
