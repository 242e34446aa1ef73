"""protocols.chat_client.ChatClient against real loopback HTTP: the platform's own chat app (a playbook
model and a real MCP server, no Ray), and a small misbehaving agent for the failures the real one never
produces on purpose (a cut stream, an unreadable frame, a proxy's 502, a 503 with Retry-After)."""

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from protocols.chat_client import ChatClient, ChatClientError, ChatRequestError, ChatResult, ChatStreamError
from protocols.events import Done, Metadata, Token, ToolCall, ToolResult, encode_sse
from protocols.threads import ThreadView
from tests.support.runtime import (
    PlaybookLLM,
    Turn,
    playbook_agent,
    register_playbook,
)
from tests.support.servers import ServerThread, closed_port_url


@pytest.fixture(scope="module")
def agent() -> Iterator[tuple[PlaybookLLM, str, str]]:
    """The platform's chat app: ``(playbook model, agent URL, model server URL)``."""
    with playbook_agent() as agent:
        yield agent


playbook = register_playbook


def create_odd_agent() -> tuple[FastAPI, list[dict[str, Any]]]:
    """``POST /chat`` that misbehaves on request: the user request names the failure."""
    app = FastAPI()
    seen: list[dict[str, Any]] = []
    metadata = encode_sse(Metadata(thread_id="t", run_id="r", agent="odd"))

    @app.post("/chat", response_model=None)
    async def chat(request: Request) -> Any:
        body = await request.json()
        seen.append({"body": body, "headers": dict(request.headers)})
        kind = body["user_request"]
        if kind == "busy":
            return JSONResponse(
                {"error": {"code": "storage_unavailable", "message": "try later"}},
                status_code=503,
                headers={"Retry-After": "7"},
            )
        if kind == "proxy":
            return PlainTextResponse("<html>bad gateway</html>", status_code=502)
        frames = {
            "cut": [metadata, encode_sse(Token(text="half"))],
            "garbled": [metadata, 'event: progress\ndata: {"percent": 50}\n\n'],
            "trailing": [
                metadata,
                encode_sse(Done(thread_id="t", answer="ok")),
                "event: token\ndata: {}\n\n",
            ],
        }[kind]

        async def stream() -> AsyncIterator[str]:
            for frame in frames:
                yield frame

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app, seen


@pytest.fixture(scope="module")
def odd_agent() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    app, seen = create_odd_agent()
    with ServerThread(app) as server:
        yield server.url, seen


@pytest.fixture
async def client(agent) -> AsyncIterator[ChatClient]:
    async with ChatClient(agent[1]) as chat:
        yield chat


# --- the real chat app --------------------------------------------------------------------------------


async def test_stream_yields_typed_events_from_metadata_to_done(agent, client: ChatClient) -> None:
    llm, _, _ = agent
    request = playbook(llm, Turn(tool_calls=[("echo", {"text": "hi"})]), Turn(text="The echo said hi back."))
    events = [event async for event in client.stream(request)]
    assert isinstance(events[0], Metadata) and events[0].agent == "tester"
    assert isinstance(events[-1], Done) and events[-1].thread_id == events[0].thread_id
    (call,) = [e for e in events if isinstance(e, ToolCall)]
    (result,) = [e for e in events if isinstance(e, ToolResult)]
    assert (call.name, call.args) == ("echo", {"text": "hi"})
    assert (result.id, result.status, result.content) == (call.id, "ok", "echo: hi")
    assert "".join(e.text for e in events if isinstance(e, Token)) == events[-1].answer


async def test_send_collects_the_run_and_continues_its_thread(agent, client: ChatClient) -> None:
    llm, _, _ = agent
    first = await client.send(playbook(llm, Turn(tool_calls=[("add", {"a": 2, "b": 3})]), Turn(text="Five.")))
    assert isinstance(first, ChatResult) and first.error is None
    assert first.answer == "Five." and first.run_id and first.thread_id
    assert [c.name for c in first.tool_calls] == ["add"] and first.tool_results[0].content == "5"
    assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (22, 14)  # two model calls

    again = await client.send("And now?", thread_id=first.thread_id)
    assert again.thread_id == first.thread_id and again.run_id != first.run_id
    assert again.answer == "You said: And now?"


async def test_a_refused_request_raises_before_any_stream(agent, client: ChatClient) -> None:
    for bad_thread in ("../../etc/passwd", "abc\n"):
        with pytest.raises(ChatRequestError) as refused:
            await client.send("hello", thread_id=bad_thread)
        assert (refused.value.status, refused.value.code) == (422, "invalid_request")
        assert "thread_id" in refused.value.message and client.chat_url in str(refused.value)
    with pytest.raises(ChatRequestError) as too_long:
        async for _ in client.stream("x" * 16_001):
            pytest.fail("no event may come before the refusal")
    assert (too_long.value.status, too_long.value.code) == (422, "invalid_request")


async def test_a_thread_with_a_run_going_on_is_busy(agent, client: ChatClient) -> None:
    llm, _, _ = agent
    slow = playbook(llm, Turn(text="Finally.", delay_s=1.5))
    async with aclosing(client.stream(slow)) as running:
        metadata = await anext(running)
        assert isinstance(metadata, Metadata)
        with pytest.raises(ChatRequestError) as busy:
            await client.send("me too", thread_id=metadata.thread_id)
        assert (busy.value.status, busy.value.code) == (409, "thread_busy")
        with pytest.raises(ChatRequestError) as deleting:
            await client.delete_thread(metadata.thread_id)
        assert deleting.value.code == "thread_busy"
        rest = [event async for event in running]
    assert isinstance(rest[-1], Done) and rest[-1].answer == "Finally."


async def test_get_and_delete_a_thread(agent, client: ChatClient) -> None:
    llm, _, _ = agent
    result = await client.send(playbook(llm, Turn(tool_calls=[("echo", {"text": "yo"})]), Turn(text="Done.")))
    view = await client.get_thread(result.thread_id)
    assert isinstance(view, ThreadView) and view.thread_id == result.thread_id and view.updated_at
    assert [m.role for m in view.messages] == ["user", "assistant", "tool", "assistant"]
    assert view.messages[1].tool_calls[0].args == {"text": "yo"}
    assert view.messages[2].status == "ok" and view.messages[-1].content == "Done."

    assert await client.delete_thread(result.thread_id) is True
    assert await client.get_thread(result.thread_id) is None
    assert await client.delete_thread(result.thread_id) is False
    with pytest.raises(ChatRequestError) as invalid:
        await client.get_thread("has space")
    assert (invalid.value.status, invalid.value.code) == (422, "invalid_request")
    with pytest.raises(ChatRequestError) as elsewhere:  # quoted: never resolved to {agent}/health
        await client.get_thread("../health")
    assert elsewhere.value.status == 404


async def test_health_and_an_agent_without_a_thread_api(agent, client: ChatClient) -> None:
    _, _, llm_url = agent
    report = await client.health()
    assert report["agent"] == "tester" and isinstance(report["ready"], bool)
    async with ChatClient(llm_url) as not_an_agent:  # the model server has no thread API nor /health
        with pytest.raises(ChatRequestError) as missing:
            await not_an_agent.get_thread("t1")
        assert missing.value.status == 404 and missing.value.code != "thread_not_found"
        with pytest.raises(ChatRequestError):
            await not_an_agent.health()


# --- failures on the way ----------------------------------------------------------------------------------


async def test_an_unreachable_agent() -> None:
    async with ChatClient(closed_port_url()) as client:
        for call in (client.send("hi"), client.get_thread("t"), client.delete_thread("t"), client.health()):
            with pytest.raises(ChatStreamError) as failed:
                await call
            assert failed.value.code == "agent_unreachable" and "cannot reach" in failed.value.message


@pytest.mark.parametrize(
    ("kind", "code", "before"), [("cut", "stream_interrupted", 2), ("garbled", "bad_event", 1)]
)
async def test_a_cut_or_garbled_stream_raises_after_the_events_it_had(odd_agent, kind, code, before) -> None:
    url, _ = odd_agent
    received = []
    async with ChatClient(url) as client:
        with pytest.raises(ChatStreamError) as failed:
            async for event in client.stream(kind):
                received.append(event)
    assert failed.value.code == code and len(received) == before
    assert isinstance(failed.value, ChatClientError)


async def test_the_stream_stops_at_done(odd_agent) -> None:
    url, _ = odd_agent
    async with ChatClient(url) as client:
        result = await client.send("trailing")
    assert [type(e) for e in result.events] == [Metadata, Done] and result.answer == "ok"


async def test_error_answers_that_are_not_the_platforms_json(odd_agent) -> None:
    url, _ = odd_agent
    async with ChatClient(url) as client:
        with pytest.raises(ChatRequestError) as busy:
            await client.send("busy")
        assert (busy.value.status, busy.value.code, busy.value.retry_after_s) == (
            503,
            "storage_unavailable",
            7,
        )
        with pytest.raises(ChatRequestError) as proxy:
            await client.send("proxy")
        assert (proxy.value.status, proxy.value.code, proxy.value.message) == (
            502,
            "http_502",
            "<html>bad gateway</html>",
        )


async def test_an_injected_http_client_is_shared_and_left_open(odd_agent) -> None:
    url, seen = odd_agent
    async with httpx.AsyncClient(headers={"X-Caller": "tests"}) as http:
        async with ChatClient(url, http=http, token="s3cret") as client:
            await client.send("trailing", thread_id="t-7")
        assert not http.is_closed
    request = seen[-1]
    assert request["body"] == {"user_request": "trailing", "thread_id": "t-7"}
    assert request["headers"]["authorization"] == "Bearer s3cret"
    assert request["headers"]["x-caller"] == "tests" and request["headers"]["accept"] == "text/event-stream"


async def test_concurrent_streams_on_one_client(agent, client: ChatClient) -> None:
    llm, _, _ = agent
    requests = [playbook(llm, Turn(text=f"Answer {n}.")) for n in range(4)]
    results = await asyncio.gather(*(client.send(r) for r in requests))
    assert [r.answer for r in results] == [f"Answer {n}." for n in range(4)]
    assert len({r.thread_id for r in results}) == 4


# --- credentials ------------------------------------------------------------------------------------------

USER_KEY = "rap_0123456789abcdef_" + "k" * 43
ECHOED_KEY = "rap_fedcba9876543210_" + "e" * 43  # a key the misbehaving agent below quotes back


def guarded_transport() -> tuple[httpx.MockTransport, list[tuple[str, str | None]]]:
    """An agent (``POST /chat``, ``GET``/``DELETE /threads/t``) that records each call's credential.

    It answers ``ECHOED_KEY`` with a 401 that quotes the whole ``Authorization`` header back, as no
    platform agent does but a careless proxy might.
    """
    seen: list[tuple[str, str | None]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        authorization = request.headers.get("authorization")
        seen.append((f"{request.method} {request.url.path}", authorization))
        if authorization == f"Bearer {ECHOED_KEY}":
            body = {"error": {"code": "unauthenticated", "message": f"refused {authorization}"}}
            return httpx.Response(401, json=body, headers={"WWW-Authenticate": "Bearer"})
        if request.url.path == "/chat":
            frames = [Metadata(thread_id="t", run_id="r", agent="a"), Done(thread_id="t", answer="ok")]
            sse = "".join(encode_sse(frame) for frame in frames)
            return httpx.Response(200, text=sse, headers={"Content-Type": "text/event-stream"})
        if request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(200, json={"thread_id": "t", "messages": []})

    return httpx.MockTransport(handle), seen


async def test_a_calls_token_replaces_the_default_for_that_call_only() -> None:
    transport, seen = guarded_transport()
    async with httpx.AsyncClient(transport=transport) as http:
        client = ChatClient("http://agent", http=http, token="default-token")
        for token in (USER_KEY, None, ""):  # an empty token is no token, as for the constructor
            assert (await client.send("hi", token=token)).answer == "ok"
            assert (await client.get_thread("t", token=token)).thread_id == "t"
            assert await client.delete_thread("t", token=token) is True
        async with ChatClient("http://agent", http=http) as anonymous:
            await anonymous.send("hi", token=USER_KEY)
            await anonymous.send("hi")
    calls = ["POST /chat", "GET /threads/t", "DELETE /threads/t"]
    assert seen == [
        *((call, f"Bearer {USER_KEY}") for call in calls),
        *((call, "Bearer default-token") for call in calls * 2),
        ("POST /chat", f"Bearer {USER_KEY}"),
        ("POST /chat", None),
    ]


async def test_a_token_is_in_no_error_message_and_no_log(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    transport, seen = guarded_transport()
    async with httpx.AsyncClient(transport=transport) as http:
        client = ChatClient("http://agent", http=http)
        for call in (client.send("hi", token=ECHOED_KEY), client.get_thread("t", token=ECHOED_KEY)):
            with pytest.raises(ChatRequestError) as refused:
                await call
            assert (refused.value.status, refused.value.code) == (401, "unauthenticated")
            assert refused.value.message == "refused Bearer [redacted]" and ECHOED_KEY not in str(
                refused.value
            )
        broken = f"{USER_KEY}\r\nX-Injected: 1"  # would put a second header on the request
        for call in (client.send("hi", token=broken), client.delete_thread("t", token=broken)):
            with pytest.raises(ValueError) as unusable:
                await call
            assert USER_KEY not in str(unusable.value)
        async with ChatClient("http://agent", http=http, token=ECHOED_KEY) as by_default:
            with pytest.raises(ChatRequestError) as refused:
                await by_default.get_thread("t")
            assert refused.value.message == "refused Bearer [redacted]"
    shared_headers = {"Authorization": f"Bearer {ECHOED_KEY}"}  # a pooled client's own credential
    async with httpx.AsyncClient(transport=transport, headers=shared_headers) as http:
        with pytest.raises(ChatRequestError) as refused:
            await ChatClient("http://agent", http=http).send("hi")
        assert refused.value.message == "refused Bearer [redacted]"
    assert len(seen) == 4  # the unusable token never went out
    assert ECHOED_KEY not in caplog.text and USER_KEY not in caplog.text
