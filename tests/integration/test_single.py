"""The single-agent stack (serve_config.yaml, offline) on a real Ray Serve instance, over real HTTP."""

import json
import math
import time

import httpx
import openai
import pytest
from ray import serve

from protocols.events import Done, Metadata, Token, ToolCall, ToolResult
from tests.support.servers import mcp_session, tool_text
from tests.support.stack import ROOT, ServeStack, chat

pytestmark = pytest.mark.integration

SEATTLE = (47.6062, -122.3321)
SAMPLE_FORECAST = json.loads((ROOT / "sample_upstream/data/weather/nws_forecast_SEW_124_67.json").read_text())


def test_weather_chat_streams_tool_calls_tokens_and_a_sample_forecast(offline_single: ServeStack) -> None:
    response, events = chat(
        offline_single, "/weather-agent", {"user_request": "What is the weather in Seattle this week?"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert isinstance(events[0], Metadata) and events[0].agent == "weather"
    assert response.headers["x-thread-id"] == events[0].thread_id
    assert isinstance(events[-1], Done) and events[-1].thread_id == events[0].thread_id

    calls = [e for e in events if isinstance(e, ToolCall)]
    results = {e.id: e for e in events if isinstance(e, ToolResult)}
    assert calls[0].name == "geocode" and "Seattle" in calls[0].args["place"]
    forecast = next(c for c in calls if c.name in ("get_forecast", "get_world_forecast"))
    assert math.isclose(forecast.args["latitude"], SEATTLE[0], abs_tol=0.05)
    assert math.isclose(forecast.args["longitude"], SEATTLE[1], abs_tol=0.05)
    assert all(results[c.id].status == "ok" for c in calls), [results[c.id] for c in calls]

    tokens = [e for e in events if isinstance(e, Token)]
    assert len(tokens) > 10
    answer = events[-1].answer
    assert "".join(t.text for t in tokens) == answer
    first_period = SAMPLE_FORECAST["properties"]["periods"][0]
    assert first_period["detailedForecast"] in answer or first_period["shortForecast"] in answer
    assert "sample" in answer.lower()
    assert events[-1].usage.prompt_tokens > 0 and events[-1].usage.completion_tokens > 0


def test_chat_bad_requests_get_json_4xx_before_any_stream(offline_single: ServeStack) -> None:
    url = f"{offline_single.base_url}/weather-agent/chat"
    cases = [
        (b"{not json", 400),
        (json.dumps({}).encode(), 422),
        (json.dumps({"user_request": ""}).encode(), 422),
        (json.dumps({"user_request": 42}).encode(), 422),
        (json.dumps({"user_request": "hi", "thread_id": "../../etc"}).encode(), 422),
        (json.dumps({"user_request": "x" * 20_000}).encode(), 422),
    ]
    for body, status in cases:
        response = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=30)
        assert response.status_code == status, (body[:40], response.text)
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["error"]["message"]


def test_health_reports_tools_and_llm(offline_single: ServeStack) -> None:
    health = httpx.get(f"{offline_single.base_url}/weather-agent/health", timeout=30).json()
    assert health["ready"] is True and health["llm"] is True
    assert {"geocode", "get_forecast", "get_alerts", "get_air_quality"} <= set(health["tools"])


def weather_replicas_running() -> int:
    deployments = serve.status().applications["mcp_weather"].deployments
    return deployments["WeatherMCP"].replica_states.get("RUNNING", 0)


async def test_mcp_weather_tools_through_official_client_with_two_replicas(
    offline_single: ServeStack,
) -> None:
    deadline = time.monotonic() + 120
    while weather_replicas_running() < 2:
        assert time.monotonic() < deadline, "mcp_weather never reached 2 running replicas"
        time.sleep(1)
    url = f"{offline_single.base_url}/mcp-weather/mcp"
    for _ in range(4):  # several sessions: stateless HTTP must work whichever replica answers
        async with mcp_session(url) as session:
            tools = {tool.name for tool in (await session.list_tools()).tools}
            assert {"geocode", "get_forecast", "get_world_forecast", "get_alerts", "get_air_quality"} <= tools
            place = json.loads(tool_text(await session.call_tool("geocode", {"place": "Seattle"})))
            match = place["results"][0] if "results" in place else place
            forecast = await session.call_tool(
                "get_forecast", {"latitude": match["latitude"], "longitude": match["longitude"]}
            )
            assert not forecast.isError and "SAMPLE DATA" in tool_text(forecast)

    async with mcp_session(url) as session:
        bad_lat = await session.call_tool("get_forecast", {"latitude": 200, "longitude": 0})
        assert bad_lat.isError and "latitude" in tool_text(bad_lat)
        bad_state = await session.call_tool("get_alerts", {"state": "Washington"})
        assert bad_state.isError and "state" in tool_text(bad_state).lower()


def test_openai_client_against_llm_route(offline_single: ServeStack) -> None:
    client = openai.OpenAI(base_url=f"{offline_single.base_url}/llm/v1", api_key="unused", timeout=60)
    model = client.models.list().data[0].id
    tools = [
        {
            "type": "function",
            "function": {
                "name": "geocode",
                "description": "Find the latitude and longitude of a place by name.",
                "parameters": {
                    "type": "object",
                    "properties": {"place": {"type": "string", "description": "Place name"}},
                    "required": ["place"],
                },
            },
        }
    ]
    messages = [{"role": "user", "content": "Where is Lisbon? Find its coordinates."}]
    reply = client.chat.completions.create(model=model, messages=messages, tools=tools)
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "geocode" and "Lisbon" in json.loads(call.function.arguments)["place"]
    assert reply.usage.prompt_tokens > 0

    stream = client.chat.completions.create(
        model=model, messages=messages, tools=tools, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    streamed_args = "".join(
        tc.function.arguments or "" for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []
    )
    assert json.loads(streamed_args)["place"] == json.loads(call.function.arguments)["place"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=messages)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=[])


def wait_for_tools(stack: ServeStack, route: str, expected: set[str], timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(f"{stack.base_url}{route}/health", timeout=30)
        body = response.json()
        if expected <= set(body.get("tools", [])) and response.status_code == 200:
            return body
        assert time.monotonic() < deadline, f"{route} never saw tools {expected}: {body}"
        time.sleep(1)


def probe_mcp_app(stack: ServeStack, tools: list[str]) -> dict:
    return {
        "name": "mcp_probe",
        "route_prefix": "/mcp-probe",
        "import_path": "tests.apps.probe_mcp:build_app",
        "args": {"tools": tools, "num_cpus": 0.05, "max_replicas": 1},
        "runtime_env": {"env_vars": {"PYTHONPATH": str(ROOT), "SERVE_BASE_URL": stack.base_url}},
    }


def test_agent_discovers_a_late_mcp_server_and_a_new_tool_without_redeploy(
    offline_single: ServeStack,
) -> None:
    stack = offline_single
    agent = {
        "name": "probe_agent",
        "route_prefix": "/probe-agent",
        "import_path": "tests.apps.probe_agent:build_app",
        "args": {"tools_refresh_s": 2, "num_cpus": 0.05},
        "runtime_env": {
            "env_vars": {"PYTHONPATH": str(ROOT), "SERVE_BASE_URL": stack.base_url, "OFFLINE": "1"}
        },
    }
    stack.deploy({"applications": [agent]})  # its MCP server does not exist yet
    try:
        response = httpx.get(f"{stack.base_url}/probe-agent/health", timeout=30)
        assert response.status_code == 503 and response.json()["ready"] is False

        stack.deploy({"applications": [probe_mcp_app(stack, ["echo_text"])]})
        wait_for_tools(stack, "/probe-agent", {"echo_text"})

        stack.deploy({"applications": [probe_mcp_app(stack, ["echo_text", "reverse_text"])]})
        wait_for_tools(stack, "/probe-agent", {"echo_text", "reverse_text"})
        _, events = chat(stack, "/probe-agent", {"user_request": "Reverse this text: stressed"})
        calls = [e for e in events if isinstance(e, ToolCall)]
        assert any(c.name == "reverse_text" for c in calls), events
        assert all(e.status == "ok" for e in events if isinstance(e, ToolResult))
        assert isinstance(events[-1], Done)
    finally:
        stack.remove("probe_agent", "mcp_probe")
