"""``a2a_execute_text`` and the A2A LangChain tools against a real A2A app (over the ``/chat`` test peer).

The app's card advertises a public URL nobody can reach here, as in production behind a load balancer:
calls still work because the client reaches the agent at the URL it resolved the card from.
"""

import asyncio
import pickle
from collections.abc import AsyncIterator

import pytest
from a2a.utils.constants import TransportProtocol
from langchain_core.messages import ToolMessage

from agent_runtime.a2a.app import A2AAgentSpec, A2ASkill, create_a2a_app
from agent_runtime.tools.a2a import A2AAgents, a2a_agent_tool, a2a_tool, describe_card
from platform_core.settings import get_settings
from protocols.a2a_client import (
    A2ATaskFailed,
    A2ATimeout,
    A2AUnavailable,
    a2a_execute_text,
    resolve_card,
)
from tests.support.a2a import ChatPeer, peer_url_fixture, serve_prefixed
from tests.support.metrics import record_agent_metrics
from tests.support.servers import free_port

PREFIX = "/a2a-research"
SPEC = A2AAgentSpec(
    name="research",
    description="Researches a topic on the web and answers with sources.",
    skills=[A2ASkill(id="web", name="Web research", description="Searches and reads web pages.")],
    agent_url="/research-agent",
    route_prefix=PREFIX,
)


def make_app(peer_url: str, **options):
    spec = SPEC.model_copy(update={"agent_url": peer_url})
    return create_a2a_app(
        spec, public_base_url="https://agents.example.com", progress_interval_s=60, **options
    )


peer_url = peer_url_fixture()


@pytest.fixture(scope="module")
async def agent_url(peer_url: tuple[ChatPeer, str]) -> AsyncIterator[str]:
    async with serve_prefixed(make_app(peer_url[1]), PREFIX) as base:
        yield base + PREFIX


async def wait_for(condition, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


# --- a2a_execute_text --------------------------------------------------------------------------------


async def test_card_is_rebased_onto_the_resolved_url(agent_url: str) -> None:
    card = await resolve_card(agent_url, refresh=True)
    assert {i.url.rstrip("/") for i in card.supported_interfaces} == {agent_url}
    # Resolved as a 1.0 client (A2A-Version sent with the card fetch): the 1.0 card, 1.0 interfaces too.
    assert {i.protocol_version for i in card.supported_interfaces} == {"1.0", "0.3"}


@pytest.mark.parametrize("transport", [TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON])
async def test_execute_text_returns_answer_and_continues_context(
    agent_url: str, peer_url: tuple[ChatPeer, str], transport: TransportProtocol
) -> None:
    first = await a2a_execute_text(agent_url, "tools: who won?", transports=(transport,))
    assert first.text == f"echo: tools: who won? [thread {first.context_id}]"
    second = await a2a_execute_text(
        agent_url, "and then?", context_id=first.context_id, transports=(transport,)
    )
    assert second.context_id == first.context_id and second.task_id != first.task_id
    assert second.text == f"echo: and then? [thread {first.context_id}]"


async def test_execute_text_raises_task_failed_with_remote_message(agent_url: str) -> None:
    with pytest.raises(
        A2ATaskFailed, match="research task failed: The agent failed: model backend refused"
    ) as err:
        await a2a_execute_text(agent_url, "fail: now")
    assert err.value.state == "failed" and err.value.task_id


async def test_execute_text_timeout_cancels_remote_task(
    agent_url: str, peer_url: tuple[ChatPeer, str]
) -> None:
    peer = peer_url[0]
    with pytest.raises(A2ATimeout, match="did not answer within 0.5 s"):
        await a2a_execute_text(agent_url, "slow: forever", timeout_s=0.5, context_id="ctx-client-timeout")
    await wait_for(lambda: "ctx-client-timeout" in peer.closed)  # the remote run was stopped


async def test_execute_text_unavailable_without_agent() -> None:
    dead = f"http://127.0.0.1:{free_port()}/a2a-nobody"
    with pytest.raises(A2AUnavailable, match="no agent card at .*a2a-nobody.*Network communication error"):
        await a2a_execute_text(dead, "hello")


async def test_execute_text_unavailable_when_agent_goes_away(peer_url: tuple[ChatPeer, str]) -> None:
    port = free_port()
    async with serve_prefixed(make_app(peer_url[1]), PREFIX, port) as base:
        url = base + PREFIX
        assert (await a2a_execute_text(url, "hi")).text.startswith("echo: hi")
    with pytest.raises(A2AUnavailable, match="research unavailable at .*: Network communication error"):
        await a2a_execute_text(url, "still there?")  # card cached, connection refused now
    # The failure dropped the cached card: the next call looks for the card again.
    with pytest.raises(A2AUnavailable, match="no agent card at"):
        await a2a_execute_text(url, "and now?")


async def test_execute_text_404_card_is_unavailable(agent_url: str) -> None:
    with pytest.raises(A2AUnavailable, match=r"HTTP 404"):
        await a2a_execute_text(agent_url + "/nothing-here", "hello")


# --- LangChain tools ---------------------------------------------------------------------------------


async def test_tool_source_describes_and_calls_agent(agent_url: str) -> None:
    source = A2AAgents({"a2a_research": agent_url})
    [tool] = await source.get_tools()
    assert tool.name == "a2a_research"
    assert "Researches a topic on the web" in tool.description and "Web research" in tool.description
    assert set(tool.args) == {"query"}
    assert (await tool.ainvoke({"query": "tools: ray serve"})).startswith("echo: tools: ray serve")
    assert source.status()["a2a_research"].ok


async def test_tool_failure_is_a_tool_error_not_a_crash(agent_url: str) -> None:
    [tool] = await A2AAgents({"a2a_research": agent_url}).get_tools()
    call = {"type": "tool_call", "id": "call-1", "name": "a2a_research", "args": {"query": "fail: x"}}
    message = await tool.ainvoke(call)
    assert isinstance(message, ToolMessage) and message.status == "error"
    assert message.content.startswith("research agent could not complete the request: research task failed")


async def test_delegations_are_counted_by_outcome(agent_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = record_agent_metrics(monkeypatch)
    [tool] = await A2AAgents({"a2a_research": agent_url}).get_tools()
    await tool.ainvoke({"query": "hello"})
    await tool.ainvoke(
        {"type": "tool_call", "id": "c1", "name": "a2a_research", "args": {"query": "fail: x"}}
    )
    gone = a2a_tool("a2a_gone", f"http://127.0.0.1:{free_port()}/a2a-gone", await resolve_card(agent_url))
    await gone.ainvoke({"query": "anyone?"})
    assert recorded.tags("delegations") == [
        {"target": "a2a_research", "status": "ok"},
        {"target": "a2a_research", "status": "failed"},
        {"target": "a2a_gone", "status": "unavailable"},
    ]


async def test_tool_reports_unavailable_agent(peer_url: tuple[ChatPeer, str]) -> None:
    port = free_port()
    async with serve_prefixed(make_app(peer_url[1]), PREFIX, port) as base:
        tool = await a2a_agent_tool(base + PREFIX)
    assert tool.name == "a2a_research"
    result = await tool.ainvoke({"query": "hello"})
    assert result.startswith("research agent unavailable: research unavailable at")


async def test_tool_source_waits_for_peer_that_starts_later(peer_url: tuple[ChatPeer, str]) -> None:
    port = free_port()
    source = A2AAgents({"a2a_research": f"http://127.0.0.1:{port}{PREFIX}"})
    assert await source.get_tools() == []
    status = source.status()["a2a_research"]
    assert not status.ok and "no agent card" in (status.error or "")
    async with serve_prefixed(make_app(peer_url[1]), PREFIX, port):
        await asyncio.sleep(0.7)  # past the first retry delay (0.5 s ± 20 %)
        [tool] = await source.get_tools()
        assert (await tool.ainvoke({"query": "late"})).startswith("echo: late")
    assert source.status()["a2a_research"].ok


def test_tool_source_routes_config_and_pickling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVE_BASE_URL", "http://serve.internal:8000")
    get_settings.cache_clear()
    try:
        source = A2AAgents({"a2a_weather": "/a2a-weather", "a2a_research": "/a2a-research"})
        assert source.status()["a2a_weather"].url == "http://serve.internal:8000/a2a-weather"
        moved = source.with_overrides(urls={"a2a_research": "http://other:9000/a2a-research"}, refresh_s=5)
        assert moved.status()["a2a_research"].url == "http://other:9000/a2a-research" and moved.refresh_s == 5
        with pytest.raises(ValueError, match="no A2A agent named"):
            source.with_overrides(urls={"a2a_travel": "/a2a-travel"})
        copy = pickle.loads(pickle.dumps(source))
        assert copy.agents == source.agents and copy._state is None
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    with pytest.raises(ValueError, match="invalid tool name"):
        A2AAgents({"bad name!": "/a2a-x"})


async def test_describe_card_lists_skills(agent_url: str) -> None:
    card = await resolve_card(agent_url)
    assert describe_card(card).splitlines() == [
        "Researches a topic on the web and answers with sources.",
        "- Web research: Searches and reads web pages.",
    ]
