"""The scripted model's HTTP API, driven by the official ``openai`` client over real loopback HTTP."""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from llm.scripted.server import create_app
from tests.support.llm import PLACES, WEATHER_TOOLS, forecast_text, stand_in_tools
from tests.support.servers import serve_in_thread

MODEL = "scripted-offline-model"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve_in_thread(create_app()) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def assemble_tool_calls(chunks: list[Any]) -> list[dict[str, str]]:
    """Tool calls rebuilt from stream deltas the way clients do it (by ``index``)."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                call["name"] += (delta.function.name or "") if delta.function else ""
                call["arguments"] += (delta.function.arguments or "") if delta.function else ""
    return [calls[i] for i in sorted(calls)]


def test_models_and_health(client: OpenAI, base_url: str) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL
    assert httpx.get(f"{base_url}/health").json() == {
        "ready": True,
        "backend": "scripted",
        "model": MODEL,
        "config_version": None,
    }


def test_plain_completion_has_content_and_consistent_usage(client: OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=user("Hello, who are you?"))
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert "offline" in choice.message.content and not choice.message.tool_calls
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_stream_matches_the_whole_completion_and_ends_with_usage(client: OpenAI) -> None:
    messages = user("Hello, who are you?")
    whole = client.chat.completions.create(model=MODEL, messages=messages)
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 5  # really streamed
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_include_usage_has_no_usage_chunk(client: OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=user("Hi"), stream=True))
    assert all(c.choices for c in chunks) and chunks[-1].choices[0].finish_reason == "stop"


def test_tool_calls_whole(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=user("Compare the weather in Seattle and Paris"), tools=WEATHER_TOOLS
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["geocode", "geocode"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"place": "Seattle"}, {"place": "Paris"}]
    assert len({c.id for c in calls}) == 2 and all(c.type == "function" for c in calls)
    assert completion.usage.completion_tokens > 0


def test_tool_calls_stream_with_indexes_ids_and_incremental_arguments(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=user("Compare the weather in Seattle and Paris"),
            tools=WEATHER_TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    calls = assemble_tool_calls(chunks)
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
        ("geocode", {"place": "Seattle"}),
        ("geocode", {"place": "Paris"}),
    ]
    assert all(c["id"].startswith("call_") for c in calls)
    argument_pieces = [
        d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or [] if d.function.arguments
    ]
    assert len(argument_pieces) > 2  # arguments arrive in pieces
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "tool_calls"
    ]
    assert chunks[-1].usage.completion_tokens > 0


def test_agent_loop_through_the_client(client: OpenAI) -> None:
    messages: list[dict[str, Any]] = user("What is the weather in Seattle this week?")
    for _ in range(4):
        message = (
            client.chat.completions.create(model=MODEL, messages=messages, tools=WEATHER_TOOLS)
            .choices[0]
            .message
        )
        if not message.tool_calls:
            break
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            content = stand_in_tools(call.function.name, json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
    seattle = PLACES["seattle"]
    assert forecast_text(seattle["latitude"], seattle["longitude"]) in message.content


async def test_async_client_whole_and_stream(base_url: str) -> None:
    client = AsyncOpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)
    whole = await client.chat.completions.create(
        model=MODEL, messages=user("Weather in Paris?"), tools=WEATHER_TOOLS
    )
    assert whole.choices[0].message.tool_calls[0].function.name == "geocode"
    stream = await client.chat.completions.create(
        model=MODEL, messages=user("Weather in Paris?"), tools=WEATHER_TOOLS, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert (
        assemble_tool_calls(chunks)[0]["arguments"]
        == whole.choices[0].message.tool_calls[0].function.arguments
    )
    await client.close()


def _error(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.mark.parametrize(
    ("kwargs", "status", "param"),
    [
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "messages.0.role"),
        (
            {"messages": user("hi"), "tools": [{"type": "function", "function": {"description": "no name"}}]},
            400,
            None,
        ),
        (
            {
                "messages": user("hi"),
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}],
            },
            400,
            None,
        ),
        (
            {
                "messages": user("hi"),
                "tools": WEATHER_TOOLS,
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            400,
            None,
        ),
        ({"messages": user("hi"), "n": 2}, 422, "n"),
        ({"messages": user("hi"), "response_format": {"type": "json_object"}}, 422, "response_format"),
    ],
)
def test_bad_requests_get_openai_errors(
    client: OpenAI, kwargs: dict[str, Any], status: int, param: str | None
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=MODEL, **kwargs)
    assert caught.value.status_code == status
    error = _error(caught.value)
    assert error["type"] == "invalid_request_error" and error["message"]
    if param is not None:
        assert error["param"] == param


def test_unknown_model_is_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert _error(caught.value)["code"] == "model_not_found"


async def test_invalid_json_missing_fields_and_unknown_routes_in_process() -> None:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://scripted") as http:
        response = await http.post(
            "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
        response = await http.post("/v1/chat/completions", json={"messages": user("hi")})
        assert response.status_code == 400 and response.json()["error"]["param"] == "model"
        response = await http.post("/v1/chat/completions", json=[1, 2])
        assert response.status_code == 400
        response = await http.get("/v1/nothing-here")
        assert response.status_code == 404 and set(response.json()["error"]) == {
            "message",
            "type",
            "param",
            "code",
        }
