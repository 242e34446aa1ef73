"""The agents behind the OpenAI API (``/openai``) on the real offline multi-agent stack, with the official
``openai`` client: every agent a model, a weather answer with its tool steps, the travel flow streamed
with its delegations, and a conversation the client kept reaching a LangGraph and a MAF agent."""

import httpx
import openai
import pytest

from tests.support.stack import ServeStack

pytestmark = pytest.mark.integration


def _client(stack: ServeStack) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{stack.base_url}/openai/v1", api_key="auth-off", max_retries=0, timeout=300
    )


def test_every_agent_of_the_config_is_a_model(offline_multi: ServeStack) -> None:
    ids = {model.id for model in _client(offline_multi).models.list()}
    assert ids == {"weather", "research", "travel", "packing"}
    health = httpx.get(f"{offline_multi.base_url}/openai/health", timeout=30).json()
    assert health["ready"] and "config_version" in health


def test_a_weather_answer_with_its_tool_steps_and_usage(offline_multi: ServeStack) -> None:
    completion = _client(offline_multi).chat.completions.create(
        model="weather", messages=[{"role": "user", "content": "What is the weather in Paris this week?"}]
    )
    answer = completion.choices[0].message.content or ""
    assert "Paris" in answer and "sample" in answer.lower()
    steps = completion.model_extra["agent_events"]
    called = [s["name"] for s in steps if s["type"] == "tool_call"]
    assert called[:2] == ["geocode", "get_world_forecast"], steps
    assert all(s["status"] == "ok" for s in steps if s["type"] == "tool_result")
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0


async def test_the_travel_flow_streams_with_its_delegations(offline_multi: ServeStack) -> None:
    client = openai.AsyncOpenAI(
        base_url=f"{offline_multi.base_url}/openai/v1", api_key="auth-off", max_retries=0, timeout=300
    )
    stream = await client.chat.completions.create(
        model="travel",
        messages=[{"role": "user", "content": "Plan a 3-day trip to Lisbon next week."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    await client.close()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Lisbon" in text
    steps = [c.model_extra["agent_event"] for c in chunks if c.model_extra.get("agent_event")]
    results = {s["name"]: s["status"] for s in steps if s["type"] == "tool_result"}
    assert results == {"a2a_weather": "ok", "a2a_research": "ok", "a2a_packing": "ok"}, results
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


@pytest.mark.parametrize("agent", ["weather", "packing"])  # LangGraph and Microsoft Agent Framework
def test_the_clients_conversation_is_the_agents_thread(offline_multi: ServeStack, agent: str) -> None:
    history = [
        {"role": "user", "content": "I am travelling to Seattle on Friday."},
        {"role": "assistant", "content": "Noted: Seattle, on Friday."},
    ]
    raw = _client(offline_multi).chat.completions.with_raw_response.create(
        model=agent, messages=[*history, {"role": "user", "content": "What is the weather in Seattle?"}]
    )
    assert "Seattle" in (raw.parse().choices[0].message.content or "")
    thread = httpx.get(
        f"{offline_multi.base_url}/{agent}-agent/threads/{raw.headers['x-thread-id']}", timeout=30
    ).json()
    said = [(m["role"], m["content"]) for m in thread["messages"] if m["role"] in ("user", "assistant")]
    assert said[:3] == [
        ("user", history[0]["content"]),
        ("assistant", history[1]["content"]),
        ("user", "What is the weather in Seattle?"),
    ], said
