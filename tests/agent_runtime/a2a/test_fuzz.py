"""Fuzzing the A2A app in process: hypothesis-generated JSON-RPC bodies (A2A 1.0 and 0.3 method names,
well-formed and broken messages, any ids and params, any ``A2A-Version``) and REST requests (1.0 HTTP+JSON,
0.3 ``/v1``) over ``httpx.ASGITransport``. The SSE agent behind it is the ``/chat`` test peer on loopback.

Properties: no 5xx; JSON-RPC answers are JSON-RPC (a result, or an error object with an integer code and a
message); every other non-2xx is JSON with an error object (a2a-sdk's ``google.rpc.Status`` shape, or the
platform's for unknown routes); no request past its timeout; an over-large body refused with 413.
"""

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from a2a.server.tasks import InMemoryTaskStore
from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.a2a.app import MAX_REQUEST_BYTES, A2AAgentSpec, create_a2a_app
from tests.support.a2a import ChatPeer
from tests.support.fuzz import (
    InProcessApp,
    Reply,
    describe,
    fuzz_settings,
    garbage_bodies,
    json_values,
    nasty_text,
)
from tests.support.servers import ServerThread

PREFIX = "/a2a-weather"


@pytest.fixture(scope="module")
def a2a() -> Iterator[InProcessApp]:
    with ServerThread(ChatPeer().app()) as peer:
        spec = A2AAgentSpec(name="weather", description="Weather.", agent_url=peer.url, route_prefix=PREFIX)
        app = create_a2a_app(
            spec,
            public_base_url="http://testserver",
            task_timeout_s=8,
            progress_interval_s=60,
            task_store=InMemoryTaskStore(),
        )
        with InProcessApp(app) as served:
            yield served


def _error_object(reply: Reply) -> dict[str, Any]:
    assert reply.headers.get("content-type", "").startswith("application/json"), describe(reply)
    body = reply.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), describe(reply)
    error: dict[str, Any] = body["error"]
    assert isinstance(error.get("code"), int | str) and error["code"] != "", describe(reply)
    assert isinstance(error.get("message"), str), describe(reply)
    return error


def check_json_rpc(reply: Reply) -> None:
    assert reply.status < 500, f"server error: {describe(reply)}"
    if reply.status >= 400:
        _error_object(reply)
        return
    if reply.headers.get("content-type", "").startswith("text/event-stream"):
        return  # a streaming method: its frames are the SDK's
    body = reply.json()
    assert body.get("jsonrpc") == "2.0", describe(reply)
    if "error" in body:
        assert isinstance(body["error"].get("code"), int) and isinstance(body["error"].get("message"), str)
    else:
        assert "result" in body, describe(reply)


def check_rest(reply: Reply) -> None:
    assert reply.status < 500, f"server error: {describe(reply)}"
    if reply.status >= 400:
        _error_object(reply)


# --- strategies -------------------------------------------------------------------------------------

# Texts the peer answers at once (its "slow:" and "crash:" prefixes are behaviours of their own).
texts = nasty_text.filter(lambda t: not t.startswith(("slow:", "crash:")))
parts = st.lists(
    st.fixed_dictionaries(
        {}, optional={"text": texts | json_values, "kind": st.just("text"), "data": json_values}
    ),
    max_size=3,
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "messageId": nasty_text | json_values,
        "role": st.sampled_from(["ROLE_USER", "ROLE_AGENT", "user", "agent", "x", "ROLE_UNSPECIFIED"]),
        "parts": parts | json_values,
        "content": parts,
        "contextId": nasty_text,
        "taskId": nasty_text,
        "kind": st.just("message"),
        "metadata": json_values,
    },
)
configurations = st.fixed_dictionaries(
    {},
    optional={
        "blocking": st.booleans() | json_values,
        "historyLength": st.integers(-5, 5),
        "acceptedOutputModes": json_values,
    },
)
send_params = st.fixed_dictionaries(
    {}, optional={"message": messages | json_values, "configuration": configurations}
)
task_params = st.fixed_dictionaries(
    {}, optional={"id": nasty_text | json_values, "name": nasty_text, "historyLength": json_values}
)
METHODS = [
    "SendMessage",
    "SendStreamingMessage",
    "GetTask",
    "CancelTask",
    "ListTasks",
    "SubscribeToTask",
    "GetExtendedAgentCard",
    "message/send",
    "message/stream",
    "tasks/get",
    "tasks/cancel",
    "tasks/resubscribe",
    "agent/getAuthenticatedExtendedCard",
]
rpc_bodies = st.one_of(
    st.fixed_dictionaries(
        {"jsonrpc": st.just("2.0") | json_values, "method": st.sampled_from(METHODS) | nasty_text},
        optional={
            "id": st.integers() | nasty_text | json_values,
            "params": send_params | task_params | json_values,
        },
    ),
    json_values,
)
versions = st.sampled_from(["1.0", "0.3", "1.5", "2.0", "", "x", None])


def headers_for(version: str | None) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if version is not None:
        headers["A2A-Version"] = version
    return headers


@fuzz_settings()
@given(body=rpc_bodies, version=versions)
def test_json_rpc_bodies(a2a: InProcessApp, body: Any, version: str | None) -> None:
    check_json_rpc(a2a.request("POST", "/", json=body, headers=headers_for(version)))


@fuzz_settings(scale=0.6)
@given(raw=garbage_bodies, version=versions)
def test_json_rpc_garbage(a2a: InProcessApp, raw: bytes, version: str | None) -> None:
    check_json_rpc(a2a.request("POST", "/", content=raw, headers=headers_for(version)))


REST_POSTS = ["/message:send", "/message:stream", "/v1/message:send", "/v1/message:stream"]


@fuzz_settings()
@given(path=st.sampled_from(REST_POSTS), body=send_params | json_values, version=versions)
def test_rest_messages(a2a: InProcessApp, path: str, body: Any, version: str | None) -> None:
    check_rest(a2a.request("POST", path, json=body, headers=headers_for(version)))


@fuzz_settings()
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    template=st.sampled_from(
        [
            "/tasks/{}",
            "/tasks/{}:cancel",
            "/tasks/{}:subscribe",
            "/v1/tasks/{}",
            "/v1/tasks/{}:cancel",
            "/tasks",
            "/{}",
            "/{}/tasks/{}",
        ]
    ),
    task_id=nasty_text,
    version=versions,
    query=st.dictionaries(
        st.sampled_from(["historyLength", "pageSize", "status", "x"]), nasty_text, max_size=2
    ),
)
def test_rest_routes(
    a2a: InProcessApp, method: str, template: str, task_id: str, version: str | None, query: dict
) -> None:
    path = template.format(quote(task_id, safe=""), quote(task_id, safe=""))
    reply = a2a.request(method, path, headers=headers_for(version), params=query)
    if method != "GET" or not path.startswith("/tasks/") or not path.endswith(":subscribe"):
        check_rest(reply)


# --- regressions and bounds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/a/b/c/d", 404), ("PUT", "/", 405), ("DELETE", "/health", 405)]
)
def test_unknown_routes_and_methods_answer_json(
    a2a: InProcessApp, method: str, path: str, status: int
) -> None:
    """Found by fuzzing: Starlette's plain-text ``Not Found`` / ``Method Not Allowed``."""
    reply = a2a.request(method, path)
    assert reply.status == status
    assert reply.json()["error"]["code"] in ("not_found", "method_not_allowed")


def test_over_large_body_is_413_before_parsing(a2a: InProcessApp) -> None:
    """Found by review of the fuzz targets: a 20 MB JSON-RPC body was read and parsed whole."""
    reply = a2a.request("POST", "/", content=b" " * (MAX_REQUEST_BYTES + 1), headers=headers_for("1.0"))
    assert reply.status == 413 and reply.json()["error"]["code"] == "request_too_large"


def test_a_valid_message_still_works(a2a: InProcessApp) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {
            "message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}]},
            "configuration": {"blocking": True},
        },
    }
    reply = a2a.request("POST", "/", json=body, headers=headers_for("1.0"))
    assert reply.status == 200 and reply.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
