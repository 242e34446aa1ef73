"""Shared helpers of the ``test_llm_*`` tests (no tests here): tool definitions shaped like the platform's
weather, web and A2A tools, and an agent loop that runs the scripted model against local stand-in tool
functions.
"""

import json
from collections.abc import Callable
from typing import Any

from llm.scripted.completion import generate_reply
from llm.scripted.protocol import ChatCompletionRequest


def function_tool(
    name: str, description: str, properties: dict[str, Any], required: list[str]
) -> dict[str, Any]:
    parameters = {"type": "object", "properties": properties, "required": required}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def _coordinate(title: str, limit: int) -> dict[str, Any]:
    return {
        "type": "number",
        "title": title,
        "description": f"{title} in degrees",
        "minimum": -limit,
        "maximum": limit,
    }


COORDINATES = {"latitude": _coordinate("Latitude", 90), "longitude": _coordinate("Longitude", 180)}

WEATHER_TOOLS = [
    function_tool(
        "geocode",
        "Find latitude/longitude of a place by name.",
        {"place": {"type": "string", "title": "Place", "description": "Place name, e.g. a city"}},
        ["place"],
    ),
    function_tool(
        "get_forecast", "Weather forecast for a US location (NWS).", COORDINATES, ["latitude", "longitude"]
    ),
    function_tool(
        "get_world_forecast",
        "Weather forecast for any location worldwide (Open-Meteo).",
        COORDINATES,
        ["latitude", "longitude"],
    ),
    function_tool(
        "get_alerts",
        "Active weather alerts for a US state (two-letter code).",
        {"state": {"type": "string", "description": "Two-letter US state code, e.g. CA"}},
        ["state"],
    ),
    function_tool(
        "get_air_quality", "Current air quality (AQI) for a location.", COORDINATES, ["latitude", "longitude"]
    ),
]

WEB_TOOLS = [
    function_tool(
        "web_search",
        "Search the web. Returns titles, URLs and snippets.",
        {
            "query": {"type": "string"},
            "count": {"type": "integer", "default": 5, "minimum": 1, "maximum": 20},
        },
        ["query"],
    ),
    function_tool(
        "fetch_url",
        "Fetch a web page and return its text.",
        {"url": {"type": "string", "description": "The URL to fetch"}},
        ["url"],
    ),
]

TRAVEL_TOOLS = [
    function_tool(
        "a2a_weather",
        "Ask the weather agent (over A2A) about forecasts, weather alerts and air quality for a place.",
        {"query": {"type": "string", "description": "The question for the weather agent"}},
        ["query"],
    ),
    function_tool(
        "a2a_research",
        "Ask the research agent (over A2A) to research a topic on the web and summarize sources.",
        {"query": {"type": "string", "description": "The research question"}},
        ["query"],
    ),
]

# What a geocoding service answers; the model has to take coordinates from here (it has no city table).
PLACES = {
    "seattle": {
        "name": "Seattle",
        "latitude": 47.6062,
        "longitude": -122.3321,
        "country_code": "US",
        "admin1": "Washington",
    },
    "paris": {
        "name": "Paris",
        "latitude": 48.8566,
        "longitude": 2.3522,
        "country_code": "FR",
        "admin1": "Ile-de-France",
    },
    "springfield": {
        "name": "Springfield",
        "latitude": 39.7817,
        "longitude": -89.6501,
        "country_code": "US",
        "admin1": "Illinois",
    },
}


def forecast_text(latitude: float, longitude: float) -> str:
    return f"Rain likely at {latitude:.2f},{longitude:.2f} through Thursday, highs near 52F."


def stand_in_tools(name: str, args: dict[str, Any]) -> str:
    """Local stand-ins for the platform's tools, answering like the real services (JSON)."""
    if name == "geocode":
        match = PLACES.get(args["place"].split(",")[0].strip().lower())
        return json.dumps(
            {"results": [match], "note": "sample data"} if match else {"error": "no such place"}
        )
    if name in ("get_forecast", "get_world_forecast"):
        periods = [
            {
                "name": "This Afternoon",
                "detailedForecast": forecast_text(args["latitude"], args["longitude"]),
            },
            {"name": "Tonight", "detailedForecast": "Cloudy, low around 44F."},
        ]
        return json.dumps({"source": f"{name} sample data", "periods": periods})
    if name == "get_alerts":
        return json.dumps(
            {"state": args["state"], "alerts": [{"event": "Wind Advisory", "headline": "Gusts to 45 mph"}]}
        )
    if name == "get_air_quality":
        return json.dumps({"us_aqi": 31, "category": "Good"})
    if name == "web_search":
        hits = [
            {
                "title": "Fusion energy milestones",
                "url": "https://example.org/fusion",
                "snippet": "Fusion energy news",
            },
            {"title": "Cat pictures", "url": "https://example.org/cats", "snippet": "Cute cats"},
            {
                "title": "How fusion reactors work",
                "url": "https://example.org/reactors",
                "snippet": "Fusion reactors",
            },
        ]
        return json.dumps({"query": args["query"], "results": hits})
    if name == "fetch_url":
        return (
            f"# {args['url']}\nFusion energy passed a milestone in 2025.\nSee also https://example.org/more"
        )
    if name.startswith("a2a_"):
        return f"The {name[4:]} agent says: sample answer about '{args['query'][:40]}'."
    raise AssertionError(f"unexpected tool {name}")


Executor = Callable[[str, dict[str, Any]], str]


def run_agent(
    request: str,
    tools: list[dict[str, Any]],
    *,
    execute: Executor = stand_in_tools,
    max_rounds: int = 8,
    **options: Any,
) -> tuple[list[list[tuple[str, dict[str, Any]]]], str]:
    """Drive the scripted model like an agent loop: returns the tool calls of each round and the answer."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": request},
    ]
    rounds: list[list[tuple[str, dict[str, Any]]]] = []
    for _ in range(max_rounds):
        body = {"model": "scripted-offline-model", "messages": messages, "tools": tools, **options}
        reply = generate_reply(ChatCompletionRequest.model_validate(body), "scripted-offline-model")
        if not reply.tool_calls:
            assert reply.content
            return rounds, reply.content
        calls = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in reply.tool_calls]
        rounds.append(calls)
        messages.append({"role": "assistant", "content": None, "tool_calls": reply.tool_calls})
        for call, (name, args) in zip(reply.tool_calls, calls, strict=True):
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": execute(name, args)})
    raise AssertionError(f"no answer after {max_rounds} rounds: {rounds}")
