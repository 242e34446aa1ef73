"""Fuzzing the ``/llm`` app's CPU backends in process: the scripted offline model and the upstream relay
(pointed at a scripted model on loopback), without Ray.

schemathesis generates from each app's OpenAPI (``/v1/chat/completions`` with the request model the
scripted model validates, ``/v1/models``, ``/health``); hypothesis builds chat requests: any roles and
contents, tools with arbitrary JSON schemas (the scripted model fills arguments from them), tool choices,
streaming or not, and raw garbage. Properties: no 5xx, every refusal OpenAI's error shape with a code, a
streamed answer that ends with ``[DONE]``, no request past its timeout, an over-large body refused (413).
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm.scripted.protocol import ChatCompletionRequest
from llm.scripted.server import create_app as create_scripted
from llm.upstream import UpstreamTarget
from llm.upstream import create_app as create_upstream
from platform_core.openai_errors import MAX_REQUEST_BYTES
from tests.support.fuzz import (
    InProcessApp,
    Reply,
    assert_openai_answer,
    fuzz_settings,
    garbage_bodies,
    json_objects_with,
    json_values,
    nasty_text,
    openapi_cases,
    send_case,
    with_json_body,
)
from tests.support.servers import ServerThread

MODEL = "scripted-offline-model"


@pytest.fixture(scope="module")
def scripted() -> Iterator[InProcessApp]:
    with InProcessApp(create_scripted(MODEL)) as served:
        yield served


@pytest.fixture(scope="module")
def relay() -> Iterator[InProcessApp]:
    with ServerThread(create_scripted(MODEL)) as upstream:
        with InProcessApp(create_upstream(UpstreamTarget(f"{upstream.url}/v1", timeout_s=8))) as served:
            yield served


@pytest.fixture(scope="module", params=["scripted", "relay"])
def llm(request: pytest.FixtureRequest) -> InProcessApp:
    return request.getfixturevalue(request.param)


def check_completion(reply: Reply, streamed: bool) -> None:
    assert_openai_answer(reply)
    if reply.status != 200:
        return
    if streamed:
        lines = [line for line in reply.content.decode().split("\n") if line.startswith("data: ")]
        assert lines and lines[-1] == "data: [DONE]", reply.content[-300:]
        for line in lines[:-1]:
            chunk = json.loads(line.removeprefix("data: "))
            assert chunk.get("object") == "chat.completion.chunk", chunk
    else:
        body = reply.json()
        assert body["object"] == "chat.completion" and body["choices"], body


# --- strategies: chat requests a client may send ------------------------------------------------------

tool_names = st.from_regex(r"\A[A-Za-z0-9_.-]{1,64}\Z") | nasty_text
json_schemas: st.SearchStrategy[Any] = st.recursive(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["string", "integer", "number", "boolean", "null", "object", "array"])},
        optional={
            "enum": st.lists(json_values, max_size=3),
            "minimum": st.integers() | st.floats(allow_nan=False, allow_infinity=False),
            "maximum": st.integers() | st.floats(allow_nan=False, allow_infinity=False),
            "pattern": st.sampled_from(["^[a-z]+$", "(", "\\d{2}"]),
            "description": nasty_text,
            "default": json_values,
        },
    )
    | json_values,
    lambda children: st.fixed_dictionaries(
        {"type": st.just("object")},
        optional={
            "properties": st.dictionaries(nasty_text, children, max_size=4),
            "required": st.lists(nasty_text, max_size=3),
            "items": children,
            "anyOf": st.lists(children, max_size=2),
        },
    ),
    max_leaves=8,
)
tools = st.fixed_dictionaries(
    {
        "type": st.just("function") | json_values,
        "function": st.fixed_dictionaries(
            {"name": tool_names},
            optional={"description": nasty_text, "parameters": json_schemas, "strict": st.booleans()},
        ),
    }
)
contents = (
    nasty_text
    | st.none()
    | st.lists(
        st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "x"]), "text": nasty_text}),
        max_size=3,
    )
)
tool_calls = st.lists(
    st.fixed_dictionaries(
        {
            "id": nasty_text,
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": tool_names, "arguments": nasty_text | json_values.map(json.dumps)}
            ),
        }
    ),
    max_size=3,
)
messages = st.lists(
    json_objects_with(
        {
            "role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "x"]),
            "content": contents,
            "name": nasty_text,
            "tool_calls": tool_calls,
            "tool_call_id": nasty_text,
        }
    ),
    max_size=5,
)
tool_choices = st.sampled_from(["none", "auto", "required", "x"]) | st.fixed_dictionaries(
    {"type": st.just("function"), "function": st.fixed_dictionaries({"name": tool_names})}
)
chat_requests = json_objects_with(
    {
        "model": st.just(MODEL) | nasty_text,
        "messages": messages,
        "tools": st.lists(tools, max_size=3),
        "tool_choice": tool_choices,
        "parallel_tool_calls": st.booleans(),
        "stream": st.booleans(),
        "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
        "max_tokens": st.integers(min_value=-2, max_value=50),
        "max_completion_tokens": st.integers(min_value=-2, max_value=50),
        "stop": nasty_text | st.lists(nasty_text, max_size=3),
        "n": st.integers(min_value=-1, max_value=3),
        "response_format": st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object", "x"])}),
        "temperature": st.floats(allow_nan=False, allow_infinity=False),
    }
)
# Mostly well-formed: a valid model and a user message, so the model itself runs on the rest.
runnable_requests = chat_requests.map(
    lambda body: (
        {
            "model": MODEL,
            **body,
            "messages": [*body.get("messages", [])[:4], {"role": "user", "content": "Weather in Paris?"}],
        }
        if isinstance(body.get("messages", []), list)
        else body
    )
)


@fuzz_settings()
@given(body=chat_requests | runnable_requests)
def test_chat_completion_requests(llm: InProcessApp, body: dict) -> None:
    reply = llm.request("POST", "/v1/chat/completions", json=body)
    check_completion(reply, streamed=body.get("stream") is True)


@fuzz_settings(scale=0.6)
@given(raw=garbage_bodies)
def test_chat_completion_garbage_bodies(llm: InProcessApp, raw: bytes) -> None:
    reply = llm.request(
        "POST", "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert_openai_answer(reply)


SCRIPTED_OPENAPI = with_json_body(
    create_scripted(MODEL).openapi(), "/v1/chat/completions", "post", ChatCompletionRequest
)


@fuzz_settings()
@given(case=openapi_cases(SCRIPTED_OPENAPI))
def test_openapi_operations(llm: InProcessApp, case) -> None:
    reply = send_case(llm, case)
    if case.path == "/v1/chat/completions":
        streamed = isinstance(case.body, dict) and case.body.get("stream") is True
        check_completion(reply, streamed=streamed)
    else:
        assert_openai_answer(reply)


@fuzz_settings(scale=0.5)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    path=st.sampled_from(
        ["/v1/chat/completions", "/v1/models", "/health", "/v1/completions", "/", "/v1/models/x/y"]
    ),
)
def test_any_method_on_any_route(llm: InProcessApp, method: str, path: str) -> None:
    assert_openai_answer(llm.request(method, path))


# --- regressions and bounds -------------------------------------------------------------------------


def test_deeply_nested_json_is_a_400_not_a_server_error(llm: InProcessApp) -> None:
    """Found by fuzzing: 5,000 nested ``[`` made ``json.loads`` raise RecursionError, a 500."""
    reply = llm.request("POST", "/v1/chat/completions", content=b"[" * 5000 + b"]" * 5000)
    assert reply.status == 400 and reply.json()["error"]["code"] == "invalid_json"


def test_wrong_method_has_an_error_code(llm: InProcessApp) -> None:
    """Found by fuzzing: 405s (and other framework errors) had ``code: null`` and type ``server_error``."""
    reply = llm.request("GET", "/v1/chat/completions")
    assert reply.status == 405
    assert reply.json()["error"] | {"message": ""} == {
        "message": "",
        "type": "invalid_request_error",
        "param": None,
        "code": "method_not_allowed",
    }


def test_over_large_body_is_413(llm: InProcessApp) -> None:
    """Found by review of the fuzz targets: the body was read whole, of any size, before parsing."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x" * MAX_REQUEST_BYTES}]}
    reply = llm.request("POST", "/v1/chat/completions", json=body)
    assert reply.status == 413 and reply.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_constants_are_a_400(llm: InProcessApp, constant: bytes) -> None:
    """Found by fuzzing: ``{"": NaN}`` passed ``json.loads``, and the relay answered 500 when httpx refused
    to encode it for the upstream."""
    reply = llm.request(
        "POST", "/v1/chat/completions", content=b'{"model": "m", "temperature": ' + constant + b"}"
    )
    assert reply.status == 400 and reply.json()["error"]["code"] == "invalid_json"
