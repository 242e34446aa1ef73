"""Word lists the scripted model's policy uses: stop words, related-concept hints, US state codes.

These are the model's only "knowledge". They are generic (English function words, what a weather or
research request is about, a public list of US states); none is keyed to particular test phrases and
there is deliberately no table of cities or coordinates: places are resolved by calling tools.
Entries are written as plain words and stemmed by :func:`llm.scripted.text.stem` when used.
"""

# English function words and verbs that say nothing about which tool fits ("get", "find", "tell me").
STOP_WORDS: frozenset[str] = frozenset(
    """
    a an the and or but if then else of in on at to for from by with without about into onto over under
    up down out off as is are was were be been being am do does did doing done have has had having i me
    my mine we us our you your yours he him his she her it its they them their this that these those
    there here what which who whom whose when where why how can could would should will shall may might
    must not no yes so too very just also any some all each every much many more most less few such own
    same other than only please thanks thank hi hello hey want wants need needs like get gets got give
    gives tell show find finds let lets help use uses using used make makes made know say said going go
    tool tools function functions call calls return returns given via e g eg ie etc one two it's i'm
    what's whats
    """.split()
)

# Extra words a request word brings along, for tools described with a different word than the user
# chose ("the weather this week" is answered by a forecast tool). Used on the request side only.
RELATED: dict[str, tuple[str, ...]] = {
    # weather
    "weather": ("forecast", "temperature"),
    "forecast": ("weather",),
    "temperature": ("weather", "forecast"),
    "rain": ("weather", "forecast", "precipitation"),
    "snow": ("weather", "forecast", "precipitation"),
    "sunny": ("weather", "forecast"),
    "cloudy": ("weather", "forecast"),
    "wind": ("weather", "forecast"),
    "storm": ("weather", "forecast", "alert"),
    "umbrella": ("weather", "forecast", "precipitation"),
    "hot": ("weather", "forecast", "temperature"),
    "cold": ("weather", "forecast", "temperature"),
    "warm": ("weather", "forecast", "temperature"),
    "today": ("forecast",),
    "tonight": ("forecast",),
    "tomorrow": ("forecast",),
    "week": ("forecast",),
    "weekend": ("forecast",),
    "warning": ("alert",),
    "advisory": ("alert",),
    "hazard": ("alert",),
    "pollution": ("air", "quality", "aqi"),
    "smog": ("air", "quality", "aqi"),
    "smoke": ("air", "quality", "aqi"),
    "aqi": ("air", "quality"),
    # places
    "coordinate": ("latitude", "longitude", "geocode"),
    "locate": ("latitude", "longitude", "geocode", "location"),
    # research and the web
    "research": ("search", "web", "page", "read"),
    "investigate": ("search", "web", "research"),
    "learn": ("search", "research"),
    "news": ("search", "web", "latest"),
    "latest": ("search", "news"),
    "recent": ("search", "news"),
    "article": ("search", "web", "page", "read"),
    "source": ("search", "web", "page"),
    "lookup": ("search",),
    "google": ("search", "web"),
    "website": ("web", "page", "url", "fetch"),
    "link": ("url", "page", "fetch"),
    "url": ("page", "fetch", "web"),
    "page": ("fetch", "web"),
    "read": ("fetch", "page"),
    "summarize": ("fetch", "page", "read"),
    # travel: planning a trip needs the weather and things to see
    "trip": ("travel", "weather", "forecast", "research", "search", "attraction"),
    "travel": ("trip", "weather", "forecast", "research", "search", "attraction"),
    "visit": ("trip", "travel", "weather", "forecast", "research", "search", "attraction"),
    "vacation": ("trip", "travel", "weather", "forecast", "research", "search", "attraction"),
    "holiday": ("trip", "travel", "weather", "forecast", "research", "search", "attraction"),
    "itinerary": ("trip", "travel", "research", "search", "attraction"),
    "pack": ("trip", "weather", "forecast"),
    "sightseeing": ("attraction", "research", "search"),
    "attraction": ("research", "search"),
    "museum": ("attraction", "research", "search"),
    "restaurant": ("research", "search"),
    "see": ("attraction", "research", "search"),
}

# Weak hints: question words that suggest "look something up". They count only when no tool matched on
# anything stronger, so "What is the weather?" is not also sent to a search tool.
WEAK_RELATED: dict[str, tuple[str, ...]] = {
    word: ("search", "research", "question", "ask", "answer", "information", "web", "page", "read")
    for word in ("what", "who", "why", "how", "when", "which", "explain", "describe", "information", "about")
}

# Parameter words, after stemming, that mark a parameter's kind (see llm.scripted.arguments).
PLACE_WORDS = frozenset({"place", "location", "city", "town", "address", "destination", "locality", "region"})
URL_WORDS = frozenset({"url", "uri", "link", "href", "website"})
QUERY_WORDS = frozenset(
    {
        "query",
        "q",
        "question",
        "task",
        "request",
        "prompt",
        "message",
        "input",
        "text",
        "topic",
        "instruction",
        "keyword",
        "search",
        "goal",
        "ask",
    }
)
STATE_WORDS = frozenset({"state"})

# Record keys that also answer a parameter (after lower-casing and removing "_" and "-").
KEY_ALIASES: dict[str, tuple[str, ...]] = {
    "latitude": ("lat",),
    "longitude": ("lon", "lng", "long"),
    "state": ("statecode", "stateabbr", "admin1code", "admin1", "region", "regioncode"),
    "country": ("countrycode", "countryname"),
    "countrycode": ("country",),
    "zip": ("zipcode", "postalcode", "postcode"),
}

# Keys whose string values say where data comes from; the answer always quotes them (sample-data labels).
PROVENANCE_KEYS = frozenset({"note", "notice", "disclaimer", "source", "attribution", "datasource", "sample"})

# Region words in a tool description: a tool "for a US location" vs one "worldwide".
US_SCOPE_PATTERN = r"\b(?:US|U\.S\.|USA|United States)\b"
WORLD_SCOPE_PATTERN = r"\b(?:worldwide|world|global|globally|international|any location|anywhere)\b"
US_COUNTRY_VALUES = frozenset({"us", "usa", "united states", "united states of america", "u.s.", "u.s.a."})

US_STATES: dict[str, str] = {
    "alabama": "AL",
    "alaska": "AK",
    "arizona": "AZ",
    "arkansas": "AR",
    "california": "CA",
    "colorado": "CO",
    "connecticut": "CT",
    "delaware": "DE",
    "district of columbia": "DC",
    "florida": "FL",
    "georgia": "GA",
    "hawaii": "HI",
    "idaho": "ID",
    "illinois": "IL",
    "indiana": "IN",
    "iowa": "IA",
    "kansas": "KS",
    "kentucky": "KY",
    "louisiana": "LA",
    "maine": "ME",
    "maryland": "MD",
    "massachusetts": "MA",
    "michigan": "MI",
    "minnesota": "MN",
    "mississippi": "MS",
    "missouri": "MO",
    "montana": "MT",
    "nebraska": "NE",
    "nevada": "NV",
    "new hampshire": "NH",
    "new jersey": "NJ",
    "new mexico": "NM",
    "new york": "NY",
    "north carolina": "NC",
    "north dakota": "ND",
    "ohio": "OH",
    "oklahoma": "OK",
    "oregon": "OR",
    "pennsylvania": "PA",
    "rhode island": "RI",
    "south carolina": "SC",
    "south dakota": "SD",
    "tennessee": "TN",
    "texas": "TX",
    "utah": "UT",
    "vermont": "VT",
    "virginia": "VA",
    "washington": "WA",
    "west virginia": "WV",
    "wisconsin": "WI",
    "wyoming": "WY",
    "puerto rico": "PR",
}
