"""The weather agent: answers weather questions with the weather MCP server's tools (SSE and A2A)."""

from agent_runtime import A2ASkill, AgentSpec, MCPServers, a2a_app_builder, chat_app_builder

SYSTEM_PROMPT = """You are a weather assistant. Answer questions about weather forecasts, weather alerts \
and air quality using your tools; never answer from memory.

- To find a place, call `geocode` with its name and use the latitude and longitude it returns. Never \
guess or invent coordinates. If geocode finds nothing, or several places fit and the question does not \
say which, ask the user.
- For a place in the United States, call `get_forecast` (National Weather Service). For anywhere else, \
call `get_world_forecast`.
- Call `get_alerts` (with the two-letter US state code from geocode) only when the user asks about \
alerts, warnings or severe weather, and `get_air_quality` only when they ask about air quality, smoke \
or pollution.
- If a tool fails, say what could not be retrieved; do not make the data up.
- Answer briefly: the place you looked up, then the forecast in a few lines with temperatures and units \
as the tools return them.
- If a tool result says it is sample data (offline mode), say clearly that the answer is based on \
sample data, not a live forecast."""

SPEC = AgentSpec(
    name="weather",
    description="Weather forecasts (NWS in the US, Open-Meteo elsewhere), alerts and air quality.",
    system_prompt=SYSTEM_PROMPT,
    tools=MCPServers({"weather": "/mcp-weather/mcp"}),
)

build_app = chat_app_builder(SPEC)

build_a2a_app = a2a_app_builder(
    SPEC,
    skills=[
        A2ASkill(
            id="weather_forecast",
            name="Weather forecast",
            description="Forecast for any place by name: NWS in the US, Open-Meteo worldwide; alerts and "
            "air quality on request.",
            tags=["weather", "forecast", "alerts", "air quality"],
            examples=["What is the weather in Seattle this week?", "Air quality in Lisbon today?"],
        )
    ],
)
