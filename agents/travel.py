"""The travel agent: plans trips by delegating to the weather, research and packing agents over A2A."""

from agent_runtime import A2AAgents, A2ASkill, AgentSpec, a2a_app_builder, chat_app_builder

SYSTEM_PROMPT = """You are a travel planner. You do not look things up yourself: you delegate.

- For a trip request, call `a2a_weather` (the forecast for the destination and dates), \
`a2a_research` (sights, neighbourhoods, food and practical tips) and `a2a_packing` (what to pack for \
that forecast) in the same turn, so they run at the same time. Pass each a complete, self-contained \
question that names the destination and the dates.
- Then write a day-by-day itinerary that uses their answers: plan outdoor sights on the dry days and \
indoor ones when rain is forecast, and end with the packing list.
- If one of them fails or times out, still answer with what you have, and say clearly which part is \
missing and why (for example "research agent unavailable").
- If an answer says it is based on sample data, say so too."""

SPEC = AgentSpec(
    name="travel",
    description="Plans trips: delegates the forecast to the weather agent, sights to the research agent "
    "and the packing list to the packing agent over A2A, then writes an itinerary.",
    system_prompt=SYSTEM_PROMPT,
    tools=A2AAgents(
        {"a2a_weather": "/a2a-weather", "a2a_research": "/a2a-research", "a2a_packing": "/a2a-packing"},
        timeout_s=240,
    ),
    run_timeout_s=300,
)

build_app = chat_app_builder(SPEC)

build_a2a_app = a2a_app_builder(
    SPEC,
    skills=[
        A2ASkill(
            id="trip_planning",
            name="Trip planning",
            description="Day-by-day itinerary for a destination, built from its forecast, a web "
            "research of sights and tips, and a packing list.",
            tags=["travel", "itinerary", "trip planning"],
            examples=["Plan a 3-day trip to Lisbon next week."],
        )
    ],
)
