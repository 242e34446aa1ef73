"""The scripted model's tool policy, driven like an agent loop against local stand-in tools (no HTTP)."""

import json
from typing import Any

import pytest

from llm.scripted.completion import generate_reply
from llm.scripted.protocol import ChatCompletionRequest
from llm.scripted.text import find_places, find_us_states, stem
from llm.scripted.tools import tool_scope
from tests.support.llm import (
    PLACES,
    TRAVEL_TOOLS,
    WEATHER_TOOLS,
    WEB_TOOLS,
    forecast_text,
    function_tool,
    run_agent,
    stand_in_tools,
)

MODEL = "scripted-offline-model"


def reply_for(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, **options: Any):
    body = {"model": MODEL, "messages": messages, **({"tools": tools} if tools else {}), **options}
    return generate_reply(ChatCompletionRequest.model_validate(body), MODEL)


def all_calls(rounds: list[list[tuple[str, dict[str, Any]]]]) -> list[tuple[str, dict[str, Any]]]:
    return [call for calls in rounds for call in calls]


def test_weather_request_geocodes_then_forecasts_with_the_geocoded_coordinates() -> None:
    rounds, answer = run_agent("What is the weather in Seattle this week?", WEATHER_TOOLS)
    seattle = PLACES["seattle"]
    assert rounds == [
        [("geocode", {"place": "Seattle"})],
        [("get_forecast", {"latitude": seattle["latitude"], "longitude": seattle["longitude"]})],
    ]
    assert forecast_text(seattle["latitude"], seattle["longitude"]) in answer  # quotes the forecast
    assert "tool" in answer and "scripted" in answer
    assert "sample data" in answer  # provenance labels are kept


def test_place_outside_the_us_uses_the_worldwide_forecast() -> None:
    rounds, answer = run_agent("How is the weather in Paris tomorrow?", WEATHER_TOOLS)
    paris = PLACES["paris"]
    assert rounds[1] == [
        ("get_world_forecast", {"latitude": paris["latitude"], "longitude": paris["longitude"]})
    ]
    assert forecast_text(paris["latitude"], paris["longitude"]) in answer


def test_comparison_emits_several_calls_per_turn_and_never_repeats_one() -> None:
    rounds, answer = run_agent("Compare the weather in Seattle and Paris", WEATHER_TOOLS)
    assert rounds[0] == [("geocode", {"place": "Seattle"}), ("geocode", {"place": "Paris"})]
    assert [name for name, _ in rounds[1]] == ["get_forecast", "get_world_forecast"]
    calls = [json.dumps(call, sort_keys=True) for call in all_calls(rounds)]
    assert len(calls) == len(set(calls))
    for place in ("seattle", "paris"):
        assert forecast_text(PLACES[place]["latitude"], PLACES[place]["longitude"]) in answer


def test_without_parallel_tool_calls_one_call_per_turn_still_covers_everything() -> None:
    rounds, _ = run_agent(
        "Compare the weather in Seattle and Paris", WEATHER_TOOLS, parallel_tool_calls=False
    )
    assert all(len(calls) == 1 for calls in rounds)
    assert sorted(name for name, _ in all_calls(rounds)) == [
        "geocode",
        "geocode",
        "get_forecast",
        "get_world_forecast",
    ]


def test_plain_weather_request_does_not_call_alerts_or_air_quality() -> None:
    rounds, _ = run_agent("Will it rain in Springfield this weekend?", WEATHER_TOOLS)
    names = {name for name, _ in all_calls(rounds)}
    assert names == {"geocode", "get_forecast"}


def test_alerts_take_the_state_from_the_geocode_result() -> None:
    rounds, answer = run_agent("Are there any weather alerts in Seattle?", WEATHER_TOOLS)
    assert rounds == [[("geocode", {"place": "Seattle"})], [("get_alerts", {"state": "WA"})]]
    assert "Wind Advisory" in answer


def test_alerts_for_a_named_state_need_no_geocoding() -> None:
    rounds, _ = run_agent("Any weather alerts in Texas right now?", WEATHER_TOOLS)
    assert rounds == [[("get_alerts", {"state": "TX"})]]


def test_air_quality_request_calls_only_the_air_quality_tool_after_geocoding() -> None:
    rounds, answer = run_agent("What's the air quality in Paris?", WEATHER_TOOLS)
    assert [name for name, _ in all_calls(rounds)] == ["geocode", "get_air_quality"]
    assert "us_aqi: 31" in answer


def test_unknown_place_reports_the_failed_lookup_instead_of_guessing() -> None:
    rounds, answer = run_agent("What is the weather in Atlantis?", WEATHER_TOOLS)
    assert rounds == [[("geocode", {"place": "Atlantis"})]]
    assert "failed" in answer and "no such place" in answer


def test_weather_request_without_a_place_asks_for_one() -> None:
    rounds, answer = run_agent("What's the weather like?", WEATHER_TOOLS)
    assert rounds == []
    assert "place" in answer


def test_coordinates_from_a_plain_text_result() -> None:
    def execute(name: str, args: dict[str, Any]) -> str:
        if name == "geocode":
            return "Seattle, WA: Latitude: 47.61, Longitude: -122.33"
        return stand_in_tools(name, args)

    rounds, _ = run_agent("Weather in Seattle?", WEATHER_TOOLS, execute=execute)
    assert rounds[1][0][1] == {"latitude": 47.61, "longitude": -122.33}


def test_out_of_range_values_are_not_used() -> None:
    def execute(name: str, args: dict[str, Any]) -> str:
        if name == "geocode":
            return json.dumps({"latitude": 123.0, "longitude": 500.0})
        return stand_in_tools(name, args)

    rounds, answer = run_agent("Weather in Seattle?", WEATHER_TOOLS, execute=execute)
    assert [name for name, _ in all_calls(rounds)] == ["geocode"]
    assert "latitude" in answer


def test_travel_request_asks_both_agents_in_one_turn() -> None:
    request = "I'm planning a trip to Paris next week. What's the weather and what should I see?"
    rounds, answer = run_agent(request, TRAVEL_TOOLS)
    assert rounds == [[("a2a_weather", {"query": request}), ("a2a_research", {"query": request})]]
    assert "weather agent says" in answer and "research agent says" in answer


def test_research_searches_then_fetches_the_most_relevant_urls_once() -> None:
    rounds, answer = run_agent("Research the latest developments in fusion energy", WEB_TOOLS)
    assert rounds[0] == [("web_search", {"query": "Research the latest developments in fusion energy"})]
    fetched = [args["url"] for name, args in all_calls(rounds) if name == "fetch_url"]
    assert fetched == ["https://example.org/fusion", "https://example.org/reactors"]  # not the cat page
    assert "https://example.org/more" not in fetched  # links inside fetched pages are not followed
    assert "passed a milestone" in answer


def test_url_in_the_request_is_fetched_directly() -> None:
    rounds, _ = run_agent("Summarize https://example.org/fusion please", WEB_TOOLS)
    assert rounds == [[("fetch_url", {"url": "https://example.org/fusion"})]]


def test_follow_up_naming_a_new_place_keeps_the_topic_and_geocodes_again() -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "What is the weather in Seattle?"}]
    reply = reply_for(messages, WEATHER_TOOLS)
    messages += [
        {"role": "assistant", "content": None, "tool_calls": reply.tool_calls},
        {
            "role": "tool",
            "tool_call_id": reply.tool_calls[0]["id"],
            "content": stand_in_tools("geocode", {"place": "Seattle"}),
        },
        {"role": "assistant", "content": "Seattle: rain."},
        {"role": "user", "content": "And in Paris?"},
    ]
    follow_up = reply_for(messages, WEATHER_TOOLS)
    assert [json.loads(c["function"]["arguments"]) for c in follow_up.tool_calls] == [{"place": "Paris"}]


def test_schema_enums_defaults_and_ranges() -> None:
    tool = function_tool(
        "daily_forecast",
        "Daily weather forecast for a city.",
        {
            "city": {"type": "string"},
            "days": {"type": "integer", "minimum": 1, "maximum": 7, "default": 3},
            "units": {"type": "string", "enum": ["metric", "imperial"]},
            "detail": {
                "anyOf": [{"type": "string", "enum": ["short", "long"]}, {"type": "null"}],
                "default": None,
            },
        },
        ["city", "days", "units"],
    )
    reply = reply_for(
        [{"role": "user", "content": "Weather in Boston for the next 10 days, imperial please"}], [tool]
    )
    assert json.loads(reply.tool_calls[0]["function"]["arguments"]) == {
        "city": "Boston",
        "days": 7,
        "units": "imperial",
    }
    reply = reply_for([{"role": "user", "content": "Weather in Boston"}], [tool])
    assert json.loads(reply.tool_calls[0]["function"]["arguments"]) == {
        "city": "Boston",
        "days": 3,
        "units": "metric",
    }


def test_tool_results_as_content_parts_are_read() -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Seattle?"}]
    first = reply_for(messages, WEATHER_TOOLS)
    parts = [{"type": "text", "text": stand_in_tools("geocode", {"place": "Seattle"})}]
    messages += [
        {"role": "assistant", "content": None, "tool_calls": first.tool_calls},
        {"role": "tool", "tool_call_id": first.tool_calls[0]["id"], "content": parts},
    ]
    second = reply_for(messages, WEATHER_TOOLS)
    assert (
        json.loads(second.tool_calls[0]["function"]["arguments"])["latitude"] == PLACES["seattle"]["latitude"]
    )


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ("none", []),
        ("auto", ["geocode"]),
        ({"type": "function", "function": {"name": "get_alerts"}}, ["get_alerts"]),
    ],
)
def test_tool_choice(tool_choice: Any, expected: list[str]) -> None:
    reply = reply_for(
        [{"role": "user", "content": "Weather in Seattle?"}], WEATHER_TOOLS, tool_choice=tool_choice
    )
    assert [c["function"]["name"] for c in reply.tool_calls] == expected
    assert (reply.content is None) == bool(expected)


def test_required_tool_choice_calls_a_tool_even_for_an_unrelated_request() -> None:
    reply = reply_for([{"role": "user", "content": "Tell me a joke"}], TRAVEL_TOOLS, tool_choice="required")
    assert reply.finish_reason == "tool_calls" and len(reply.tool_calls) == 1


def test_unrelated_request_gets_an_honest_answer_without_tool_calls() -> None:
    rounds, answer = run_agent("Tell me a joke", WEATHER_TOOLS)
    assert rounds == []
    assert "offline scripted model" in answer and "geocode" in answer


def test_without_tools_the_model_says_what_it_is() -> None:
    reply = reply_for([{"role": "user", "content": "What is the meaning of life?"}])
    assert reply.tool_calls == [] and reply.finish_reason == "stop"
    assert "offline" in reply.content and MODEL in reply.content


def test_same_request_same_reply() -> None:
    messages = [{"role": "user", "content": "Compare the weather in Seattle and Paris"}]
    assert reply_for(messages, WEATHER_TOOLS).tool_calls == reply_for(messages, WEATHER_TOOLS).tool_calls


def test_max_tokens_and_stop_cut_the_answer() -> None:
    messages = [{"role": "user", "content": "Hello there"}]
    full = reply_for(messages).content
    cut = reply_for(messages, max_tokens=5)
    assert cut.finish_reason == "length" and full.startswith(cut.content) and len(cut.content) < len(full)
    stopped = reply_for(messages, stop=["offline"])
    assert stopped.finish_reason == "stop" and "offline" not in stopped.content


@pytest.mark.parametrize(
    ("text", "places"),
    [
        ("What is the weather in Seattle this week?", ["Seattle"]),
        ("Weather for New York City tomorrow", ["New York City"]),
        ("Forecast in Austin, TX on Monday?", ["Austin, TX"]),
        ("Compare Rome and Paris", ["Rome", "Paris"]),
        ("weather in seattle", ["Seattle"]),
        ("Tell me a joke", []),
    ],
)
def test_place_extraction(text: str, places: list[str]) -> None:
    assert find_places(text) == places


def test_state_extraction_and_stemming() -> None:
    assert find_us_states("alerts in West Virginia and TX") == ["TX", "WV"]
    assert (
        stem("alerts") == stem("alert")
        and stem("forecasting") == stem("forecast")
        and stem("cities") == "city"
    )


def test_a_failed_us_forecast_falls_back_to_the_worldwide_one() -> None:
    def execute(name: str, args: dict[str, Any]) -> str:
        return "Error: NWS is down" if name == "get_forecast" else stand_in_tools(name, args)

    rounds, answer = run_agent("Weather in Seattle?", WEATHER_TOOLS, execute=execute)
    assert [name for name, _ in all_calls(rounds)] == ["geocode", "get_forecast", "get_world_forecast"]
    assert "NWS is down" in answer and "Rain likely" in answer


def test_a_us_only_tool_is_not_used_for_a_place_elsewhere() -> None:
    us_only = [tool for tool in WEATHER_TOOLS if tool["function"]["name"] in ("geocode", "get_forecast")]
    rounds, answer = run_agent("Weather in Paris?", us_only)
    assert [name for name, _ in all_calls(rounds)] == ["geocode"]
    assert "only covers the United States" in answer


def test_one_text_block_per_list_item_is_read_as_a_list() -> None:
    def execute(name: str, args: dict[str, Any]) -> str:
        if name == "geocode":  # how an MCP tool returning a list of matches arrives, blocks joined
            return json.dumps(PLACES["seattle"]) + "\n" + json.dumps(PLACES["springfield"])
        return stand_in_tools(name, args)

    rounds, _ = run_agent("Weather in Seattle?", WEATHER_TOOLS, execute=execute)
    assert rounds[1] == [("get_forecast", {"latitude": 47.6062, "longitude": -122.3321})]


def test_a_tool_named_in_a_relevant_tools_description_is_the_next_step() -> None:
    tools = [
        function_tool(
            "brave_search",
            "Search the web with Brave Search. Returns results with title, url and description. "
            "Read a result's page with fetch_url.",
            {"query": {"type": "string"}},
            ["query"],
        ),
        function_tool(
            "fetch_url",
            "Fetch a public web page and return its content.",
            {"url": {"type": "string"}},
            ["url"],
        ),
    ]

    def execute(name: str, args: dict[str, Any]) -> str:
        return stand_in_tools("web_search" if name == "brave_search" else name, args)

    rounds, _ = run_agent("What is fusion energy?", tools, execute=execute)
    assert [name for name, _ in rounds[0]] == ["brave_search"]
    assert [args["url"] for _, args in rounds[1]] == [
        "https://example.org/fusion",
        "https://example.org/reactors",
    ]


@pytest.mark.parametrize(
    ("description", "name", "scope"),
    [
        (
            "Weather forecast for US coordinates (NWS). Outside the US it returns the worldwide forecast.",
            "f",
            "us",
        ),
        ("Worldwide daily weather forecast for any coordinates, any country.", "f", "world"),
        ("Daily forecast.", "get_world_forecast", "world"),
        ("Daily forecast.", "get_forecast", None),
    ],
)
def test_tool_scope_comes_from_what_the_description_says_first(
    description: str, name: str, scope: str
) -> None:
    assert tool_scope(description, name) == scope
