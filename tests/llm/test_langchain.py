"""The scripted model works unchanged with ``langchain_openai.ChatOpenAI`` and a LangChain agent."""

import json
from collections.abc import Iterator

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from llm.scripted.server import create_app
from tests.support.llm import PLACES, WEATHER_TOOLS, forecast_text, stand_in_tools
from tests.support.servers import serve_in_thread

MODEL = "scripted-offline-model"


@tool
def geocode(place: str) -> str:
    """Find latitude/longitude of a place by name."""
    return stand_in_tools("geocode", {"place": place})


@tool
def get_forecast(latitude: float, longitude: float) -> str:
    """Weather forecast for a US location (NWS)."""
    return stand_in_tools("get_forecast", {"latitude": latitude, "longitude": longitude})


@tool
def get_alerts(state: str) -> str:
    """Active weather alerts for a US state (two-letter code)."""
    return stand_in_tools("get_alerts", {"state": state})


@pytest.fixture(scope="module")
def llm() -> Iterator[ChatOpenAI]:
    with serve_in_thread(create_app()) as url:
        yield ChatOpenAI(
            model=MODEL, base_url=f"{url}/v1", api_key="unused", stream_usage=True, max_retries=0
        )


def test_invoke_reports_usage(llm: ChatOpenAI) -> None:
    message = llm.invoke("Who are you?")
    assert isinstance(message, AIMessage) and "offline" in message.content
    usage = message.usage_metadata
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_stream_concatenates_to_the_invoke_answer_with_usage(llm: ChatOpenAI) -> None:
    chunks = list(llm.stream("Who are you?"))
    assert len(chunks) > 5
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert merged.content == llm.invoke("Who are you?").content
    assert merged.usage_metadata["output_tokens"] > 0


def test_bind_tools_with_openai_tool_dicts(llm: ChatOpenAI) -> None:
    message = llm.bind_tools(WEATHER_TOOLS).invoke("Compare the weather in Seattle and Paris")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("geocode", {"place": "Seattle"}),
        ("geocode", {"place": "Paris"}),
    ]
    assert all(c["id"] for c in message.tool_calls)


async def test_bind_tools_stream_assembles_parallel_tool_calls(llm: ChatOpenAI) -> None:
    bound = llm.bind_tools([geocode, get_forecast, get_alerts])
    merged: AIMessageChunk | None = None
    async for chunk in bound.astream("Compare the weather in Seattle and Paris"):
        merged = chunk if merged is None else merged + chunk
    assert merged is not None
    assert [c["args"] for c in merged.tool_calls] == [{"place": "Seattle"}, {"place": "Paris"}]
    assert merged.usage_metadata["output_tokens"] > 0


@pytest.mark.parametrize(("tool_choice", "expected"), [("any", "geocode"), ("get_alerts", "get_alerts")])
def test_bind_tools_tool_choice(llm: ChatOpenAI, tool_choice: str, expected: str) -> None:
    message = llm.bind_tools([geocode, get_forecast, get_alerts], tool_choice=tool_choice).invoke("Seattle?")
    assert [c["name"] for c in message.tool_calls] == [expected]


def test_tool_messages_round_trip(llm: ChatOpenAI) -> None:
    bound = llm.bind_tools([geocode, get_forecast, get_alerts])
    messages = [HumanMessage("What is the weather in Seattle this week?")]
    tools = {"geocode": geocode, "get_forecast": get_forecast, "get_alerts": get_alerts}
    for _ in range(4):
        reply = bound.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        for call in reply.tool_calls:
            messages.append(ToolMessage(tools[call["name"]].invoke(call["args"]), tool_call_id=call["id"]))
    names = [call["name"] for m in messages if isinstance(m, AIMessage) for call in m.tool_calls]
    assert names == ["geocode", "get_forecast"]
    seattle = PLACES["seattle"]
    assert forecast_text(seattle["latitude"], seattle["longitude"]) in messages[-1].content


async def test_langchain_agent_runs_the_whole_flow(llm: ChatOpenAI) -> None:
    agent = create_agent(
        llm, tools=[geocode, get_forecast, get_alerts], system_prompt="You are a weather assistant."
    )
    result = await agent.ainvoke({"messages": [HumanMessage("Are there weather alerts in Seattle?")]})
    calls = [
        (c["name"], c["args"]) for m in result["messages"] if isinstance(m, AIMessage) for c in m.tool_calls
    ]
    assert calls == [("geocode", {"place": "Seattle"}), ("get_alerts", {"state": "WA"})]
    assert "Wind Advisory" in result["messages"][-1].content
    tool_outputs = [json.loads(m.content) for m in result["messages"] if isinstance(m, ToolMessage)]
    assert tool_outputs[0]["results"][0]["name"] == "Seattle"
