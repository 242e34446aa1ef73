"""The platform's agents, one module per agent: its prompt and where its tools come from.

Each module defines ``SPEC`` (an :class:`agent_runtime.AgentSpec`) and two builders that a Serve config
names by import path: ``build_app`` (the SSE ``/chat`` app) and ``build_a2a_app`` (its A2A adapter).

- :mod:`agents.weather`: weather forecasts, alerts and air quality (the weather MCP server);
- :mod:`agents.research`: web research with sources (the web search MCP server);
- :mod:`agents.travel`: trip plans, delegating to the weather and research agents over A2A;
- :mod:`agents.packing`: packing lists from the forecast (the weather MCP server), written on Microsoft
  Agent Framework: the worked example of an agent of another framework.

Nothing is exported here: agents are deployed by import path, never imported as a library.
"""

__all__: list[str] = []
