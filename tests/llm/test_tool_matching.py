"""Tool matching of the scripted model: what a tool is about comes from its name and description."""

from llm.scripted.protocol import ToolDefinition
from llm.scripted.tools import match_tools, tool_spec


def spec(name: str, description: str):
    return tool_spec(
        ToolDefinition.model_validate(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": description,
                    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
                },
            }
        )
    )


def test_examples_in_descriptions_do_not_decide_relevance() -> None:
    weather = spec("a2a_weather", "Weather forecasts. (e.g. What is the weather in Lisbon this week?)")
    research = spec("a2a_research", "Researches a question on the web. (e.g. Must-see sights in Lisbon?)")
    matched = {
        m.tool.name for m in match_tools("Plan a 3-day trip to Lisbon next week.", [weather, research])
    }
    assert matched == {"a2a_weather", "a2a_research"}


def test_without_examples_a_place_in_a_description_still_counts() -> None:
    lisbon = spec("lisbon_guide", "A guide to Lisbon's sights.")
    other = spec("paris_guide", "A guide to the sights of Paris.")
    assert [m.tool.name for m in match_tools("What to see in Lisbon?", [lisbon, other])] == ["lisbon_guide"]


def test_a_word_that_asks_for_another_tool_does_not_push_it_out() -> None:
    # "trip" is in the packing tool's description and asks for the weather as well: both are called.
    weather = spec("a2a_weather", "Weather forecasts for any place, alerts and air quality.")
    packing = spec("a2a_packing", "Packing lists for a trip, from the destination's weather forecast.")
    research = spec("a2a_research", "Researches a question on the web and answers with sources.")
    tools = [weather, packing, research]
    trip = {m.tool.name for m in match_tools("Plan a 3-day trip to Lisbon next week.", tools)}
    assert trip == {"a2a_weather", "a2a_packing", "a2a_research"}
    # A tool named for the word is the one it asks for: packing alone, not the forecast too.
    assert [m.tool.name for m in match_tools("What should I pack for Lisbon?", tools)] == ["a2a_packing"]


def test_a_more_specific_tool_still_pushes_out_the_general_one() -> None:
    forecast = spec("get_forecast", "Weather forecast for a location.")
    alerts = spec("get_alerts", "Active weather alerts for a US state.")
    assert [m.tool.name for m in match_tools("Weather alerts in Texas?", [forecast, alerts])] == [
        "get_alerts"
    ]
