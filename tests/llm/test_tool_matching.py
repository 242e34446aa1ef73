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
