"""Fuzzing the SSE chat app in process (no Ray, no socket to the app): schemathesis over its OpenAPI
(``/chat`` with its documented body, ``GET``/``DELETE /threads/{id}``, ``/health``) and hypothesis bodies.

Properties: no 5xx, every refusal ``{"error": {"code", "message"}}``, every accepted request a complete
stream (``metadata`` first, ``done`` last), no request past its timeout, an over-large body refused with
413 before the model is asked anything. The agent is the real :class:`AgentRunner` over the playbook model
(served on loopback, as in the other chat tests).
"""

import json
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.chat.app import MAX_BODY_BYTES, ChatRequest, create_chat_app
from agent_runtime.llm_client import LLMClient
from agent_runtime.runner import AgentRunner
from agent_runtime.spec import AgentSpec
from agent_runtime.tools.sources import StaticTools
from protocols.events import Done, Metadata, parse_sse_lines
from tests.support.fuzz import (
    InProcessApp,
    Reply,
    assert_platform_answer,
    fuzz_settings,
    garbage_bodies,
    json_objects_with,
    json_values,
    nasty_text,
    openapi_cases,
    send_case,
    wait_until,
    with_json_body,
)
from tests.support.runtime import PlaybookLLM, create_playbook_llm
from tests.support.servers import ServerThread

thread_ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z") | nasty_text


@pytest.fixture(scope="module")
def llm() -> Iterator[tuple[PlaybookLLM, ServerThread]]:
    fake = create_playbook_llm()
    with ServerThread(fake.app) as server:
        yield fake, server


@pytest.fixture(scope="module")
def agent(llm: tuple[PlaybookLLM, ServerThread]) -> Iterator[InProcessApp]:
    spec = AgentSpec(name="fuzzed", system_prompt="You are fuzzed.", tools=StaticTools([]))
    runner = AgentRunner(spec, llm=LLMClient(f"{llm[1].url}/v1", discovery_timeout_s=1.0), run_timeout_s=8)
    with InProcessApp(create_chat_app(runner, ping_s=0.5)) as served:
        wait_until(lambda: served.request("GET", "/health").status == 200, what="the agent's /health")
        yield served


def check_chat(reply: Reply) -> None:
    """The /chat properties: a platform error, or a whole stream that starts and ends as the contract says."""
    assert_platform_answer(reply)
    if reply.status == 200:
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = parse_sse_lines(reply.content.decode().splitlines())
        assert isinstance(events[0], Metadata) and isinstance(events[-1], Done), events
        assert events[0].thread_id == reply.headers["x-thread-id"] == events[-1].thread_id


CHAT_OPENAPI = with_json_body(
    create_chat_app(
        AgentRunner(
            AgentSpec(name="schema", system_prompt=".", tools=StaticTools([])), llm=LLMClient("http://x/v1")
        )
    ).openapi(),
    "/chat",
    "post",
    ChatRequest,
)


@fuzz_settings()
@given(case=openapi_cases(CHAT_OPENAPI))
def test_openapi_operations_never_fail_the_server(agent: InProcessApp, case) -> None:
    reply = send_case(agent, case)
    if case.path == "/chat" and case.method.upper() == "POST":
        check_chat(reply)
    else:
        assert_platform_answer(reply)


@fuzz_settings()
@given(body=json_objects_with({"user_request": nasty_text, "thread_id": thread_ids | st.none()}))
def test_chat_json_bodies(agent: InProcessApp, body: dict) -> None:
    check_chat(agent.request("POST", "/chat", json=body))


@fuzz_settings()
@given(raw=garbage_bodies, content_type=st.sampled_from(["application/json", "text/plain", "", "x/\x7f"]))
def test_chat_garbage_bodies(agent: InProcessApp, raw: bytes, content_type: str) -> None:
    reply = agent.request("POST", "/chat", content=raw, headers={"content-type": content_type})
    check_chat(reply)


@fuzz_settings()
@given(thread_id=thread_ids, method=st.sampled_from(["GET", "DELETE"]))
def test_thread_routes(agent: InProcessApp, thread_id: str, method: str) -> None:
    reply = agent.request(method, "/threads/" + quote(thread_id, safe=""))
    assert_platform_answer(reply)


@fuzz_settings(scale=0.5)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]),
    path=st.sampled_from(["/chat", "/threads/t1", "/health", "/", "/docs/x", "/threads"]),
    body=st.none() | json_values.map(json.dumps),
)
def test_any_method_on_any_route(agent: InProcessApp, method: str, path: str, body: str | None) -> None:
    reply = agent.request(method, path, content=body)
    if path == "/chat" and method == "POST":
        check_chat(reply)
    elif method != "HEAD":  # a HEAD answer has no body to hold the error
        assert_platform_answer(reply)


# --- regressions and bounds: inputs fuzzing found, named ---------------------------------------------


def test_deeply_nested_json_is_invalid_json_not_a_server_error(agent: InProcessApp) -> None:
    """Found by fuzzing: 5,000 nested ``[`` made ``json.loads`` raise RecursionError, a 500."""
    reply = agent.request("POST", "/chat", content=b"[" * 5000 + b"]" * 5000)
    assert reply.status == 400 and reply.json()["error"]["code"] == "invalid_json"
    reply = agent.request("POST", "/chat", content=b'{"user_request":' * 3000 + b'"x"' + b"}" * 3000)
    assert reply.status == 400 and reply.json()["error"]["code"] == "invalid_json"


def test_lone_surrogate_in_user_request_is_refused(agent: InProcessApp) -> None:
    reply = agent.request("POST", "/chat", content=b'{"user_request": "hi \\ud800"}')
    assert reply.status == 400 and reply.json()["error"]["code"] == "invalid_json"


def test_over_large_body_is_413_before_the_model_is_asked(
    agent: InProcessApp, llm: tuple[PlaybookLLM, ServerThread]
) -> None:
    asked = len(llm[0].requests)
    body = json.dumps({"user_request": "x" * (MAX_BODY_BYTES + 1)})
    reply = agent.request("POST", "/chat", content=body)
    assert reply.status == 413 and reply.json()["error"]["code"] == "request_too_large"

    async def endless() -> AsyncIterator[bytes]:  # no Content-Length: refused once the limit is passed
        yield b'{"user_request": "'
        while True:
            yield b"y" * 65536

    reply = agent.request("POST", "/chat", content=endless())
    assert reply.status == 413 and reply.json()["error"]["code"] == "request_too_large"
    assert len(llm[0].requests) == asked


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_unicode_line_separators_survive_line_splitting_clients(agent: InProcessApp, separator: str) -> None:
    """Found by fuzzing: U+2028 (and U+2029, U+0085) went raw into the SSE data line, and httpx's
    ``aiter_lines`` (the platform's ChatClient), like ``str.splitlines``, cut the frame's JSON there."""
    text = f"line one{separator}line two"
    reply = agent.request("POST", "/chat", json={"user_request": text})
    assert reply.status == 200
    events = parse_sse_lines(reply.content.decode().splitlines())
    assert isinstance(events[-1], Done) and text in events[-1].answer
