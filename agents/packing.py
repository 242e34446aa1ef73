"""The packing agent: what to pack for a trip, from the forecast (Microsoft Agent Framework; SSE and A2A).

The same weather MCP server as the weather agent, discovered at run time; written on Microsoft Agent
Framework (``runner=MAFAgentRunner.from_args``) to show an agent of another framework on the platform.
"""

from agent_runtime import A2ASkill, AgentSpec, MAFAgentRunner, MCPServers, a2a_app_builder, chat_app_builder

SYSTEM_PROMPT = """You are a packing assistant. You recommend what to pack for a trip from the weather \
forecast at the destination; get the forecast with your tools, never from memory.

- Call `geocode` with the destination's name and use the latitude and longitude it returns. Never guess \
coordinates. If geocode finds nothing, or several places fit and the request does not say which, ask.
- For a place in the United States call `get_forecast` (National Weather Service); anywhere else call \
`get_world_forecast`.
- Then answer with a short packing list grouped as clothes, rain and sun gear, and extras, each item \
tied to what the forecast says (lows and highs with their units, rain, wind, snow). Add what the trip's \
length or purpose needs if the request says it.
- If a tool fails, say which forecast could not be retrieved and give only general advice.
- If a tool result says it is sample data (offline mode), say clearly that the list is based on sample \
data, not a live forecast."""

SPEC = AgentSpec(
    name="packing",
    description="Packing lists for a trip, from the destination's weather forecast.",
    system_prompt=SYSTEM_PROMPT,
    tools=MCPServers({"weather": "/mcp-weather/mcp"}),
    runner=MAFAgentRunner.from_args,
)

SKILL = A2ASkill(
    id="packing_list",
    name="Packing list",
    description="What to pack for a trip anywhere, from the destination's weather forecast.",
    tags=["packing", "travel", "weather", "forecast"],
    examples=["What should I pack for a trip to Seattle this week?", "Packing list for Lisbon?"],
)

build_app = chat_app_builder(SPEC)
build_a2a_app = a2a_app_builder(SPEC, skills=[SKILL])
