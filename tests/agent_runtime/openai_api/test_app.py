"""The ``/openai`` app over real HTTP, in front of the platform's own chat app (the playbook model and a
real MCP server, no Ray): the official ``openai`` client (sync and async, stream and not, multi-turn),
``langchain-openai`` as a third-party OpenAI client, tool steps, usage, threads and errors."""

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI

from agent_runtime.openai_api.app import OpenAIAgentsArgs, create_openai_app
from tests.support.runtime import PlaybookLLM, Turn, playbook_agent, register_playbook
from tests.support.servers import ServerThread

AGENT = "tester"


class Stack:
    def __init__(self, llm: PlaybookLLM, base_url: str) -> None:
        self.llm = llm
        self.base_url = base_url  # .../v1

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key="unused-auth-off", max_retries=0)

    def model_messages(self, user_request: str) -> list[dict[str, Any]]:
        """The messages of the last model call made for ``user_request`` (what the agent's model saw)."""
        calls = [r for r in self.llm.requests if r["messages"][-1].get("content") == user_request]
        assert calls, f"the model was never asked {user_request!r}"
        return calls[-1]["messages"]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with playbook_agent() as (llm, chat_url, _):
        with ServerThread(create_openai_app({AGENT: chat_url})) as server:
            yield Stack(llm, f"{server.url}/v1")


def _echo_then_answer(stack: Stack, answer: str) -> str:
    return register_playbook(stack.llm, Turn(tool_calls=[("echo", {"text": "hi"})]), Turn(text=answer))


def test_every_agent_is_a_model(stack: Stack) -> None:
    client = stack.client()
    assert [model.id for model in client.models.list()] == [AGENT]
    assert client.models.retrieve(AGENT).owned_by == "ray-agent-platform"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-4o")
    assert missing.value.code == "model_not_found"


def test_a_completion_carries_the_answer_the_tool_steps_and_the_runs_usage(stack: Stack) -> None:
    request = _echo_then_answer(stack, "Echoed it.")
    raw = stack.client().chat.completions.with_raw_response.create(
        model=AGENT, messages=[{"role": "user", "content": request}]
    )
    completion = raw.parse()
    message = completion.choices[0].message
    assert message.content == "Echoed it." and completion.choices[0].finish_reason == "stop"
    assert completion.model == AGENT and completion.object == "chat.completion"
    # the agent's step, where clients that show reasoning show it, and structured for programs
    assert "→ echo(text='hi')" in message.model_extra["reasoning_content"]
    assert "← echo: ok" in message.model_extra["reasoning_content"]
    steps = completion.model_extra["agent_events"]
    assert [(s["type"], s["name"]) for s in steps] == [("tool_call", "echo"), ("tool_result", "echo")]
    # two model calls (the tool round, then the answer), 11 + 7 tokens each in the playbook model
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (22, 14)
    assert completion.usage.total_tokens == 36
    assert raw.headers["x-thread-id"] == completion.model_extra["thread_id"]


def test_a_stream_relays_tokens_steps_and_ends_with_usage(stack: Stack) -> None:
    request = _echo_then_answer(stack, "Streamed answer here.")
    chunks = list(
        stack.client().chat.completions.create(
            model=AGENT,
            messages=[{"role": "user", "content": request}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Streamed answer here."
    events = [c.model_extra["agent_event"] for c in chunks if c.model_extra.get("agent_event")]
    assert [e["type"] for e in events] == ["tool_call", "tool_result"]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 36
    assert len({c.id for c in chunks}) == 1


def test_the_messages_are_the_conversation_the_agent_sees(stack: Stack) -> None:
    request = register_playbook(stack.llm, Turn(text="Third answer."))
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "second question"}]},
        {"role": "assistant", "content": None, "tool_calls": [_client_tool_call()]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a client-side tool result"},
        {"role": "assistant", "content": "second answer"},
        {"role": "user", "content": request},
    ]
    completion = stack.client().chat.completions.create(model=AGENT, messages=messages)
    assert completion.choices[0].message.content == "Third answer."
    seen = [(m["role"], m.get("content")) for m in stack.model_messages(request)]
    assert seen[0][0] == "system"  # the agent's own prompt first
    assert seen[1:] == [
        ("system", "Answer briefly."),
        ("user", "first question"),
        ("assistant", "first answer"),
        ("user", "second question"),
        ("assistant", "second answer"),
        ("user", request),
    ]


def _client_tool_call() -> dict[str, Any]:
    return {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}


def test_a_thread_id_keeps_the_conversation_on_the_server(stack: Stack) -> None:
    first = register_playbook(stack.llm, Turn(text="Noted."))
    raw = stack.client().chat.completions.with_raw_response.create(
        model=AGENT, messages=[{"role": "user", "content": first}]
    )
    thread_id = raw.headers["x-thread-id"]
    second = register_playbook(stack.llm, Turn(text="You told me before."))
    completion = stack.client().chat.completions.create(
        model=AGENT,
        messages=[{"role": "user", "content": second}],
        extra_headers={"X-Thread-Id": thread_id},
    )
    assert completion.model_extra["thread_id"] == thread_id
    seen = [(m["role"], m.get("content")) for m in stack.model_messages(second)]
    assert seen[1:] == [("user", first), ("assistant", "Noted."), ("user", second)]


async def test_the_async_client_streams_and_completes(stack: Stack) -> None:
    client = openai.AsyncOpenAI(base_url=stack.base_url, api_key="unused", max_retries=0)
    request = register_playbook(stack.llm, Turn(text="Async works."))
    stream = await client.chat.completions.create(
        model=AGENT, messages=[{"role": "user", "content": request}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Async works."
    again = await client.chat.completions.create(model=AGENT, messages=[{"role": "user", "content": request}])
    assert again.choices[0].message.content == "Async works."
    await client.close()


def test_langchain_openai_uses_an_agent_as_its_model(stack: Stack) -> None:
    request = _echo_then_answer(stack, "LangChain got it.")
    model = ChatOpenAI(model=AGENT, base_url=stack.base_url, api_key="unused", max_retries=0)
    assert model.invoke(request).content == "LangChain got it."
    streamed = "".join(str(chunk.content) for chunk in model.stream(request))
    assert streamed == "LangChain got it."


def test_bad_requests_get_openai_errors(stack: Stack) -> None:
    client = stack.client()
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.code == "model_not_found"
    cases: list[list[dict[str, Any]]] = [
        [],  # no messages
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "last is not the user's"}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,x"}}]}],
        [{"role": "user", "content": "   "}],
        [{"role": "wizard", "content": "hi"}],
    ]
    for messages in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=AGENT, messages=messages)
        assert refused.value.body["message"], messages
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=AGENT, messages=[{"role": "user", "content": "hi"}], extra_headers={"X-Thread-Id": "../x"}
        )
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=AGENT, messages=[{"role": "user", "content": "hi"}], n=2)
    raw = httpx.post(f"{stack.base_url}/chat/completions", content=b"{nope", timeout=10)
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_json"


def test_a_run_that_fails_is_an_openai_error_in_a_stream_and_out_of_one(stack: Stack) -> None:
    # A model that never stops calling tools: the run ends with tool_rounds_exceeded.
    request = register_playbook(stack.llm, then=Turn(tool_calls=[("echo", {"text": "again"})]))
    client = stack.client()
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model=AGENT, messages=[{"role": "user", "content": request}])
    assert failed.value.code == "tool_rounds_exceeded"
    seen: list[Any] = []
    with pytest.raises(openai.APIError) as broken:
        for chunk in client.chat.completions.create(
            model=AGENT, messages=[{"role": "user", "content": request}], stream=True
        ):
            seen.append(chunk)
    assert "tool_rounds_exceeded" in str(broken.value.body) or broken.value.code == "tool_rounds_exceeded"
    assert any(c.model_extra.get("agent_event") for c in seen), "the steps before the failure came through"


def test_an_unreachable_agent_is_a_502_and_health_says_not_ready() -> None:
    app = create_openai_app({"gone": "http://127.0.0.1:9/gone-agent"})
    with ServerThread(app) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as unreachable:
            client.chat.completions.create(model="gone", messages=[{"role": "user", "content": "hi"}])
        assert unreachable.value.status_code == 502 and unreachable.value.code == "agent_unreachable"
        health = httpx.get(f"{server.url}/health", timeout=10)
        assert health.status_code == 503 and health.json()["agents"] == {"gone": False}


def test_health_reports_each_agent(stack: Stack) -> None:
    health = httpx.get(stack.base_url.removesuffix("/v1") + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["agents"] == {AGENT: True}


def test_the_builder_args_are_checked() -> None:
    args = OpenAIAgentsArgs(agents={"weather": "/weather-agent"})
    assert args.num_cpus == 0.1 and args.run_timeout_s > 0
    with pytest.raises(ValueError, match="model id"):
        OpenAIAgentsArgs(agents={" weather": "/weather-agent"})
    with pytest.raises(ValueError):
        OpenAIAgentsArgs(agents={})
