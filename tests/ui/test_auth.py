"""The UI with the platform's auth on: each browser session's API key, and refusals people can read.

The agent here is a small FastAPI app over real loopback HTTP that guards its routes as the platform's
agents do (:mod:`identity.errors`, :func:`identity.service.bearer_token`): 401 without a known key, 403
for a key without ``agent:travel``, 429 over limits, an SSE stream otherwise. No Ray, no browser.
"""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from identity.errors import BudgetExceeded, Forbidden, RateLimited, Unauthenticated
from identity.keys import new_secret
from identity.service import bearer_token
from platform_core.api_errors import APIError
from protocols.events import Done, Error, Metadata, Token, Usage, encode_sse
from tests.support.servers import ServerThread
from ui.blocks import BrowserSession, ChatUI, build_blocks
from ui.client import AgentClient

SKIP = gr.skip()
SCOPE = "agent:travel"
TRAVEL_KEY = new_secret().token  # may use the agent
WEATHER_KEY = new_secret().token  # a valid key for another agent only
LIMITED_KEY = new_secret().token  # over its requests per minute
SPENT_KEY = new_secret().token  # its token budget is spent
UNKNOWN_KEY = new_secret().token  # well-formed, but no such key
SERVICE_TOKEN = "service-token-of-the-ui"  # UI_BEARER_TOKEN: not a platform key
KEYS = (TRAVEL_KEY, WEATHER_KEY, LIMITED_KEY, SPENT_KEY, UNKNOWN_KEY)


@dataclass
class GuardedAgent:
    app: FastAPI
    threads: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seen: list[tuple[str, str | None]] = field(default_factory=list)  # (route, Authorization header)

    def keys_seen(self, route: str) -> list[str | None]:
        return [auth for seen_route, auth in self.seen if seen_route == route]


def _identify(request: Request) -> None:
    """The platform's door, for one agent: raises the :class:`APIError` it would answer."""
    token = bearer_token(request.headers)
    if token == LIMITED_KEY:
        raise RateLimited(42)
    if token == SPENT_KEY:
        raise BudgetExceeded(2 * 3600)
    if token == WEATHER_KEY:
        raise Forbidden(SCOPE)
    if token != TRAVEL_KEY:
        raise Unauthenticated("unknown API key")


def create_guarded_agent() -> GuardedAgent:
    """``POST /chat`` and ``GET /threads/{id}``, each behind a bearer key."""
    app = FastAPI()
    agent = GuardedAgent(app=app)

    @app.exception_handler(APIError)
    async def refused(request: Request, exc: APIError) -> Response:
        return exc.response()

    @app.post("/chat", response_model=None)
    async def chat(request: Request) -> StreamingResponse:
        agent.seen.append(("chat", request.headers.get("authorization")))
        _identify(request)
        body = await request.json()
        thread_id = body.get("thread_id") or uuid.uuid4().hex
        answer = f"You said: {body['user_request']}"
        thread = agent.threads.setdefault(thread_id, [])
        thread += [
            {"role": "user", "content": body["user_request"]},
            {"role": "assistant", "content": answer},
        ]
        events = [
            Metadata(thread_id=thread_id, run_id=uuid.uuid4().hex, agent="travel"),
            *(Token(text=word + " ") for word in answer.split()),
            Done(thread_id=thread_id, answer=answer, usage=Usage(prompt_tokens=5, completion_tokens=3)),
        ]

        async def frames() -> AsyncIterator[bytes]:
            for event in events:
                yield encode_sse(event).encode()
                await asyncio.sleep(0.01)  # lets two sessions' streams interleave

        return StreamingResponse(frames(), media_type="text/event-stream")

    @app.get("/threads/{thread_id}")
    async def thread(thread_id: str, request: Request) -> JSONResponse:
        agent.seen.append(("thread", request.headers.get("authorization")))
        _identify(request)
        if thread_id not in agent.threads:
            return JSONResponse(
                {"error": {"code": "thread_not_found", "message": f"no thread {thread_id}"}}, status_code=404
            )
        return JSONResponse({"thread_id": thread_id, "messages": agent.threads[thread_id]})

    return agent


@pytest.fixture(scope="module")
def guarded() -> Iterator[tuple[GuardedAgent, str]]:
    agent = create_guarded_agent()
    with ServerThread(agent.app) as server:
        yield agent, server.url


@pytest.fixture
async def client() -> Any:
    client = AgentClient(connect_timeout_s=2, read_timeout_s=10)
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record of the test (httpx and httpcore included): no key may be in one."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    assert not [key for key in (*KEYS, SERVICE_TOKEN) if key in caplog.text]


async def run_send(ui: ChatUI, text: str, session: Any, api_key: str | None = None) -> list[tuple]:
    return [update async for update in ui.send(text, "Travel", session, api_key)]


def shown(updates: list[tuple]) -> str:
    """Everything the page showed or stored during a send: chat, thread box, status, session."""
    return repr([[value for value in update if value != SKIP] for update in updates])


async def test_each_session_sends_its_own_key_and_one_without_is_asked_for_one(guarded, client) -> None:
    agent, url = guarded
    ui = ChatUI({"Travel": url}, client)  # one replica, one AgentClient, two browser sessions
    before = len(agent.seen)
    with_key, without = await asyncio.gather(
        run_send(ui, "Plan a trip.", {}, TRAVEL_KEY), run_send(ui, "Plan a trip.", {}, None)
    )
    assert sorted(agent.keys_seen("chat")[before:], key=str) == [f"Bearer {TRAVEL_KEY}", None]

    chat, _, thread, status, stored = with_key[-1]
    assert chat[-1]["content"].startswith("You said: Plan a trip.") and thread and thread in status
    assert BrowserSession.model_validate(stored).thread_id == thread

    chat, _, thread, status, stored = without[-1]
    assert chat[-1]["content"] == (
        "⚠️ **Error** `http_401`: This platform needs an API key: enter one under 'API key' "
        "(create one with `platform-keys create --name NAME --scope agent:*`)"
    )
    assert thread == "" and stored["thread_id"] is None and "failed: `http_401`" in status
    assert TRAVEL_KEY not in shown(with_key) + shown(without)  # never shown, never stored

    # The session's next request carries the key again (the page sends it with every event).
    stored = with_key[-1][4]
    await run_send(ui, "And back?", stored, f"  {TRAVEL_KEY}\n")  # as pasted: whitespace is dropped
    assert agent.keys_seen("chat")[-1] == f"Bearer {TRAVEL_KEY}"
    assert agent.threads[stored["thread_id"]][-2]["content"] == "And back?"


async def test_a_users_key_replaces_the_uis_own_token_for_that_request_only(guarded) -> None:
    agent, url = guarded
    client = AgentClient(token=SERVICE_TOKEN, connect_timeout_s=2, read_timeout_s=10)
    try:
        ui = ChatUI({"Travel": url}, client)
        assert "You said" in (await run_send(ui, "Hi", {}, TRAVEL_KEY))[-1][0][-1]["content"]
        assert agent.keys_seen("chat")[-1] == f"Bearer {TRAVEL_KEY}"
        chat = (await run_send(ui, "Hi", {}))[-1][0]
        assert agent.keys_seen("chat")[-1] == f"Bearer {SERVICE_TOKEN}"  # the UI's token is not a key
        assert "This platform needs an API key" in chat[-1]["content"]
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("key", "code", "message"),
    [
        (UNKNOWN_KEY, "http_401", "The API key was refused: unknown API key"),
        (
            WEATHER_KEY,
            "http_403",
            "This API key may not use the Travel agent (this credential does not grant the scope "
            "'agent:travel')",
        ),
        (LIMITED_KEY, "http_429", "Too many requests for this key; retry later: try again in 42 s"),
        (SPENT_KEY, "http_429", "This key's token budget for the current window is spent: try again in 2 h"),
    ],
)
async def test_refusals_read_as_advice_without_the_key(guarded, client, key, code, message) -> None:
    _, url = guarded
    ui = ChatUI({"Travel": url}, client)
    updates = await run_send(ui, "Plan a trip.", {}, key)
    chat, _, thread, status, _ = updates[-1]
    assert chat[-1]["content"] == f"⚠️ **Error** `{code}`: {message}"
    assert thread == "" and f"failed: `{code}`" in status
    assert key not in shown(updates)

    events = [event async for event in client.stream_chat(url, "again", token=key, agent_name="Travel")]
    assert events == [Error(code=code, message=message)]


async def test_reload_and_continue_fetch_the_thread_with_the_sessions_key(guarded, client) -> None:
    agent, url = guarded
    ui = ChatUI({"Travel": url}, client)
    stored = (await run_send(ui, "Plan a trip.", {}, TRAVEL_KEY))[-1][4]
    thread_id = stored["thread_id"]

    picked, chat, thread, status, _ = await ui.restore(stored, TRAVEL_KEY)
    assert (picked, thread, chat) == ("Travel", thread_id, stored["messages"])
    assert "from the **Travel** agent (1 request)" in status
    assert agent.keys_seen("thread")[-1] == f"Bearer {TRAVEL_KEY}"

    # A reload forgets the key: the browser's copy shows, and the status says what is missing.
    _, chat, thread, status, _ = await ui.restore(stored)
    assert (chat, thread) == (stored["messages"], thread_id) and agent.keys_seen("thread")[-1] is None
    assert "from this browser's copy" in status and "This platform needs an API key" in status

    chat, thread, status, _ = await ui.continue_thread(thread_id, "Travel", {}, WEATHER_KEY)
    assert (chat, thread) == ([], thread_id) and "This API key may not use the Travel agent" in status
    chat, thread, status, _ = await ui.continue_thread(thread_id, "Travel", {}, TRAVEL_KEY)
    assert chat[0]["content"] == "Plan a trip." and "from the **Travel** agent" in status
    assert WEATHER_KEY not in status and TRAVEL_KEY not in status


async def test_text_that_cannot_be_a_key_is_not_sent(guarded, client) -> None:
    agent, url = guarded
    ui = ChatUI({"Travel": url}, client)
    before = len(agent.seen)
    pasted = f"{TRAVEL_KEY[:20]} {TRAVEL_KEY[20:]}"  # a key broken by a space
    updates = await run_send(ui, "Plan a trip.", {}, pasted)
    assert [update[:3] for update in updates] == [(SKIP, SKIP, SKIP)]
    assert updates[0][3].startswith("⚠️ That is not an API key") and pasted not in updates[0][3]
    _, _, status, _ = await ui.continue_thread("t-1", "Travel", {}, "rap_é")
    assert status.startswith("⚠️ That is not an API key") and "é" not in status
    assert len(agent.seen) == before  # nothing went out


async def test_the_page_has_a_password_box_whose_key_every_agent_request_carries(client) -> None:
    blocks = build_blocks({"Travel": "http://agent"}, client, title="t", concurrency_limit=2)
    config = blocks.config
    (box,) = [c for c in config["components"] if c["props"].get("elem_id") == "api-key"]
    assert box["props"]["type"] == "password" and box["props"].get("value") in (None, "")
    panel = next(c for c in config["components"] if c["props"].get("elem_id") == "api-key-panel")
    assert panel["props"]["label"] == "API key" and panel["props"]["open"] is False
    components = {c["id"]: c["props"].get("elem_id") for c in config["components"]}
    takes_key = {
        components.get(target)
        for dep in config["dependencies"]
        if box["id"] in dep["inputs"]
        for target, _ in dep["targets"]
    }
    takes_key.discard(None)  # the page's load event has no component of its own
    assert takes_key == {"message", "send", "continue"}
    load = next(dep for dep in config["dependencies"] if dep["targets"][0][1] == "load")
    assert box["id"] in load["inputs"]
