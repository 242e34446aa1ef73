"""The `/chat` wire contract as types: events, error codes, SSE framing, thread views and the README table."""

import re
from typing import get_args

import pytest
from pydantic import BaseModel, ValidationError

import protocols
from protocols.events import (
    CHAT_EVENT_ADAPTER,
    ERROR_CODES,
    EVENT_MODELS,
    HTTP_ERROR_CODES,
    ChatEvent,
    Done,
    Error,
    ErrorCode,
    HTTPErrorCode,
    Metadata,
    SSEParser,
    Token,
    ToolCall,
    ToolResult,
    Usage,
    aiter_sse_events,
    decode_event,
    encode_sse,
    is_valid_thread_id,
    parse_sse_lines,
)
from protocols.reference import README, updated
from protocols.threads import ThreadMessage, ThreadView
from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT

EVENTS: list[ChatEvent] = [
    Metadata(thread_id="t-1", run_id="r1", agent="weather"),
    Token(text='Sunny, "warm" — 25 °C\nand dry'),
    ToolCall(id="c1", name="geocode", args={"place": "Zürich", "limit": [1, 2]}),
    ToolCall(id="c2", name="no_args"),
    ToolResult(id="c1", name="geocode", status="ok", content="47.37,8.54"),
    ToolResult(id="c2", name="no_args", status="error", content="boom"),
    Error(code="llm_unavailable", message="the model endpoint answered 503"),
    Done(thread_id="t-1", answer="Sunny.", usage=Usage(prompt_tokens=12, completion_tokens=3)),
    Done(thread_id="t-1", answer=""),
]


def test_the_samples_cover_every_event_type() -> None:
    assert {type(e) for e in EVENTS} == set(EVENT_MODELS)


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type)
def test_every_event_survives_encode_and_parse(event: ChatEvent) -> None:
    frame = encode_sse(event)
    assert frame.startswith(f"event: {event.type}\ndata: {{") and frame.endswith("}\n\n")
    assert parse_sse_lines(frame.splitlines()) == [event]
    assert parse_sse_lines(frame.splitlines(keepends=True)) == [event]
    assert decode_event(event.type, frame.split("data: ", 1)[1]) == event


def test_the_wire_format_of_existing_events_is_unchanged() -> None:
    assert encode_sse(Metadata(thread_id="t", run_id="r", agent="a")) == (
        'event: metadata\ndata: {"thread_id": "t", "run_id": "r", "agent": "a"}\n\n'
    )
    assert encode_sse(Token(text="é")) == 'event: token\ndata: {"text": "é"}\n\n'
    assert encode_sse(Done(thread_id="t", answer="x")) == (
        'event: done\ndata: {"thread_id": "t", "answer": "x", '
        '"usage": {"prompt_tokens": 0, "completion_tokens": 0}}\n\n'
    )


async def test_a_streamed_body_parses_as_it_arrives_with_pings_and_split_data() -> None:
    body = ": ping\n\n" + "".join(encode_sse(e) for e in EVENTS[:2])
    body += 'event: tool_call\ndata: {"id": "c9",\ndata: "name": "x"}\n\n'
    body += encode_sse(EVENTS[-1]).rstrip("\n")  # the last frame without its blank line

    async def lines():
        for line in body.split("\n"):
            yield line

    events = [event async for event in aiter_sse_events(lines())]
    assert events == [*EVENTS[:2], ToolCall(id="c9", name="x"), EVENTS[-1]]


def test_the_parser_returns_each_event_when_its_frame_ends() -> None:
    parser = SSEParser()
    lines = encode_sse(EVENTS[0]).split("\n")
    assert [parser.feed(line) for line in lines[:-2]] == [None, None]
    assert parser.feed(lines[-2]) == EVENTS[0]
    assert parser.flush() is None


@pytest.mark.parametrize("event_type", ["message", "Token", "progress", ""])
def test_an_unknown_event_type_is_a_discriminator_error(event_type: str) -> None:
    with pytest.raises(ValidationError) as raised:
        decode_event(event_type, '{"text": "hi"}')
    assert raised.value.errors()[0]["type"] == "union_tag_invalid"
    assert isinstance(raised.value, ValueError)  # what callers catch


def test_frames_with_wrong_fields_or_data_are_rejected() -> None:
    with pytest.raises(ValidationError):
        decode_event("tool_result", '{"id": "c", "name": "x", "status": "maybe", "content": ""}')
    with pytest.raises(ValidationError):
        decode_event("metadata", '{"thread_id": "t"}')
    with pytest.raises(ValueError):
        decode_event("token", '["not", "an", "object"]')
    with pytest.raises(ValueError):
        decode_event("token", "{not json")


def test_the_adapter_validates_by_the_type_field() -> None:
    assert CHAT_EVENT_ADAPTER.validate_python({"type": "token", "text": "x"}) == Token(text="x")
    assert CHAT_EVENT_ADAPTER.validate_json('{"type": "error", "code": "internal", "message": "m"}') == Error(
        code="internal", message="m"
    )


# --- error codes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", get_args(ErrorCode))
def test_every_error_code_is_accepted_and_documented(code: str) -> None:
    assert Error(code=code, message="m").code == code
    source, meaning = ERROR_CODES[code]
    assert source in ("agent", "client") and meaning


@pytest.mark.parametrize("code", ["http_422", "http_503"])
def test_a_client_may_report_an_http_status_as_its_code(code: str) -> None:
    assert Error(code=code, message="m").code == code


@pytest.mark.parametrize("code", ["oops", "TIMEOUT", "http_42", "http_abc", "http_600", ""])
def test_codes_outside_the_contract_are_rejected(code: str) -> None:
    with pytest.raises(ValidationError):
        Error(code=code, message="m")
    with pytest.raises(ValidationError):
        decode_event("error", f'{{"code": "{code}", "message": "m"}}')


def test_the_code_tables_list_exactly_the_literals() -> None:
    assert list(ERROR_CODES) == list(get_args(ErrorCode))
    assert list(HTTP_ERROR_CODES) == list(get_args(HTTPErrorCode))
    assert all(status is None or 400 <= status < 600 for status, _ in HTTP_ERROR_CODES.values())


def _emitted(pattern: str, *packages: str) -> set[str]:
    found: set[str] = set()
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            found.update(re.findall(pattern, path.read_text()))
    return found


def test_every_code_the_platform_emits_is_in_the_contract() -> None:
    stream_codes = _emitted(r'\bError\(\s*code="(\w+)"', "agent_runtime", "ui", "protocols", "bench")
    stream_codes |= _emitted(r'ChatStreamError\(\s*"(\w+)"', "protocols")
    assert stream_codes and stream_codes <= set(get_args(ErrorCode)), stream_codes - set(get_args(ErrorCode))
    http_codes = _emitted(
        r'(?:APIError|error_response|super\(\)\.__init__)\(\s*\d{3},\s*"(\w+)"',
        "agent_runtime",
        "platform_core",
        "identity",
    )
    assert http_codes and http_codes <= set(get_args(HTTPErrorCode)), http_codes - set(
        get_args(HTTPErrorCode)
    )


# --- fields, thread ids, the package face -----------------------------------------------------------


def _models() -> list[type[BaseModel]]:
    return [*EVENT_MODELS, Usage]


@pytest.mark.parametrize("model", _models(), ids=lambda m: m.__name__)
def test_every_field_is_documented(model: type[BaseModel]) -> None:
    assert model.__doc__
    undocumented = [name for name, f in model.model_fields.items() if name != "type" and not f.description]
    assert not undocumented


@pytest.mark.parametrize("value", ["abc", "A", "t-1", "a.b_c:d-e", "x" * 128, "0123abcdef" * 3])
def test_valid_thread_ids(value: str) -> None:
    assert is_valid_thread_id(value)


@pytest.mark.parametrize("value", ["abc\n", "", "-x", ".x", "a b", "a/b", "../etc", "x" * 129, "é"])
def test_invalid_thread_ids(value: str) -> None:
    assert not is_valid_thread_id(value)


def test_the_package_face_exports_what_it_lists() -> None:
    assert all(getattr(protocols, name) is not None for name in protocols.__all__)
    assert len(set(protocols.__all__)) == len(protocols.__all__)


# --- thread views -------------------------------------------------------------------------------------


def test_a_thread_view_keeps_its_wire_shape() -> None:
    view = ThreadView.model_validate(
        {
            "thread_id": "t",
            "updated_at": "2026-12-01T10:00:00+00:00",
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"id": "c1", "name": "f", "args": {"a": 1}}],
                },
                {"role": "tool", "content": "sunny", "name": "f", "tool_call_id": "c1", "status": "ok"},
                {"role": "assistant", "content": "Sunny."},
            ],
        }
    )
    dumped = view.model_dump(mode="json", exclude_none=True)
    assert dumped["messages"][0] == {"role": "user", "content": "Weather in Paris?"}
    assert dumped["messages"][2] == {
        "role": "tool",
        "content": "sunny",
        "name": "f",
        "tool_call_id": "c1",
        "status": "ok",
    }
    assert dumped["messages"][3] == {"role": "assistant", "content": "Sunny.", "tool_calls": []}
    assert ThreadView.model_validate(dumped) == view


def test_a_thread_reader_accepts_other_agents_shapes() -> None:
    blocks = ThreadMessage.model_validate({"role": "user", "content": [{"type": "text", "text": "Hi"}, "!"]})
    assert blocks.content == "Hi!" and blocks.tool_calls == []
    openai_call = ThreadMessage.model_validate(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "r", "type": "function", "function": {"name": "search", "arguments": '{"q": 1}'}},
                {"id": "s", "type": "function", "function": {"name": "raw", "arguments": "not json"}},
            ],
        }
    )
    assert [(c.id, c.name, c.args) for c in openai_call.tool_calls] == [
        ("r", "search", {"q": 1}),
        ("s", "raw", {"arguments": "not json"}),
    ]
    assert ThreadMessage.model_validate({"role": "tool", "content": "x", "status": "success"}).status == "ok"
    assert ThreadMessage.model_validate({"role": "tool", "content": "x", "status": "ERROR"}).status == "error"
    assert ThreadMessage.model_validate({"role": "system", "content": "You plan."}).role == "system"
    with pytest.raises(ValidationError):
        ThreadMessage.model_validate({"role": "robot", "content": "x"})


# --- the README table -----------------------------------------------------------------------------------


def test_the_readme_event_table_is_current() -> None:
    current = README.read_text()
    assert updated(current) == current, "the /chat tables in README.md are out of date: run `make docs`"
    for model in EVENT_MODELS:
        assert f"| `{model.model_fields['type'].default}` |" in current
    for code in [*ERROR_CODES, *HTTP_ERROR_CODES]:
        assert f"`{code}`" in current


def test_the_generator_needs_its_markers() -> None:
    with pytest.raises(ValueError):
        updated("# no markers here\n")
