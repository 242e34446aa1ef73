"""Filling a tool's arguments from its JSON schema, the request and the turn's earlier tool results.

Where each kind of parameter (:func:`llm.scripted.tools.classify`) gets its value:

- ``place``: place names in the request (several -> one call each), else in earlier user messages;
- ``query`` (query, question, task, ...): the user's request;
- ``url``: URLs in the request, else the most relevant URLs of earlier results (at most
  :data:`MAX_URLS_PER_TOOL` per turn);
- ``state``: a US state named in the request, else a state field of an earlier result (two-letter codes
  when the parameter asks for a code);
- ``number``/``integer``/``string``: a same-named field (or alias: ``lat``/``latitude``) of an earlier
  result, one call per result that has it; for numbers also "<number> <param>" in the request;
- ``enum``: a value the request mentions; anything else required: the schema default, else the first
  enum value, else ``false`` for booleans.

Values are checked against the schema (types, ``minimum``/``maximum``, ``enum``, ``pattern``,
lengths); a value that does not fit is not used. Optional parameters are only set when the request says
so explicitly; otherwise the tool's own default applies.
"""

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from llm.scripted.conversation import Conversation, ToolResult
from llm.scripted.facts import Lookup, lookup, rank_urls, supplies, url_candidates
from llm.scripted.text import find_numbers, find_places, find_urls, find_us_states, us_state_code, words
from llm.scripted.tools import ParamSpec, ToolSpec

MAX_URLS_PER_TOOL = 2
MAX_CALLS_PER_TOOL = 4
_RECORD_KINDS = ("number", "integer", "string", "state", "enum")
_MISSING = object()
_Option = tuple[Any, ToolResult | None]  # a value for a parameter, and the result it came from (if any)


@dataclass
class Candidate:
    """One possible call: its arguments and, when they came from a tool result, that result."""

    tool: ToolSpec
    args: dict[str, Any]
    origin: ToolResult | None = None
    found: Lookup | None = None


@dataclass
class Filling:
    """What :func:`fill` found for one tool: the calls it could make now, or the parameters it lacks."""

    candidates: list[Candidate] = field(default_factory=list)
    missing: list[ParamSpec] = field(default_factory=list)
    from_results: list[ParamSpec] = field(default_factory=list)  # required params earlier results fill


# --- checking values against the schema ----------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _in_range(number: float, schema: dict[str, Any]) -> bool:
    low, high = schema.get("minimum"), schema.get("maximum")
    xlow, xhigh = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    return not (
        (low is not None and number < low)
        or (high is not None and number > high)
        or (xlow is not None and number <= xlow)
        or (xhigh is not None and number >= xhigh)
    )


def _clamp(number: float, schema: dict[str, Any]) -> float:
    if schema.get("minimum") is not None:
        number = max(number, schema["minimum"])
    if schema.get("maximum") is not None:
        number = min(number, schema["maximum"])
    return number


def conform(param: ParamSpec, value: Any, *, clamp: bool = False) -> Any:
    """``value`` converted to what the schema accepts, or ``_MISSING`` when it does not fit.

    ``clamp`` pulls a number into ``minimum``/``maximum`` (and rounds it for an integer) instead of
    rejecting it: right for a value the user asked for ("14 days" where 7 is the most).
    """
    if param.kind in ("number", "integer"):
        return _conform_number(param, value, clamp=clamp)
    if param.kind == "boolean":
        return value if isinstance(value, bool) else _MISSING
    if param.kind == "enum":
        return _conform_enum(param, value)
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return _MISSING
    return _conform_text(param, str(value).strip())


def _conform_number(param: ParamSpec, value: Any, *, clamp: bool) -> Any:
    number = _number(value)
    if number is None:
        return _MISSING
    if clamp:
        number = _clamp(number, param.schema)
    if not _in_range(number, param.schema):
        return _MISSING
    if param.kind == "integer":
        return int(round(number)) if number == round(number) or clamp else _MISSING
    return int(number) if number == int(number) and isinstance(value, int) else number


def _conform_enum(param: ParamSpec, value: Any) -> Any:
    """The enum option ``value`` names (strings compare case-insensitively)."""
    for option in param.schema.get("enum", []):
        if option == value or (isinstance(option, str) and str(value).lower() == option.lower()):
            return option
    return _MISSING


def _conform_text(param: ParamSpec, text: str) -> Any:
    """A string parameter's value: state codes, ``pattern`` and lengths checked (a query is cut)."""
    schema = param.schema
    if param.kind == "state" and _wants_code(param):
        text = us_state_code(text) or ""
    if not text:
        return _MISSING
    if schema.get("pattern") and not re.search(schema["pattern"], text):
        return _MISSING
    if schema.get("maxLength") is not None and len(text) > schema["maxLength"]:
        if param.kind != "query":
            return _MISSING
        text = text[: schema["maxLength"]]
    if schema.get("minLength") is not None and len(text) < schema["minLength"]:
        return _MISSING
    return text


def _wants_code(param: ParamSpec) -> bool:
    described = " ".join(words(f"{param.description} {param.name} {param.tool_description}"))
    return param.schema.get("maxLength") == 2 or bool(
        re.search(r"\b(two|2) letter|\bcode\b|\babbreviation", described)
    )


# --- values from the request ------------------------------------------------------------------------------


def _explicit_number(param: ParamSpec, request: str) -> list[float]:
    """Numbers the request gives a parameter by name: "3 days" for ``days``, "latitude 47.6"."""
    found: list[float] = []
    for word in words(param.name):
        stem_ = re.escape(word.rstrip("s"))
        for pattern in (
            rf"(-?\d+(?:\.\d+)?)\s*-?\s*{stem_}s?\b",
            rf"\b{stem_}s?\W{{0,3}}[:=]?\s*(-?\d+(?:\.\d+)?)",
        ):
            found += [float(m) for m in re.findall(pattern, request, re.I)]
    return found


def request_values(param: ParamSpec, conversation: Conversation) -> list[Any]:
    """Values the user's own words give for ``param``, best first (may be several places or URLs)."""
    request = conversation.request
    if param.kind == "place":
        for text in [request, *conversation.earlier_requests]:
            if places := find_places(text):
                return places
        return []
    if param.kind == "url":
        return find_urls(request)
    if param.kind == "query":
        return [request.strip()] if request.strip() else []
    if param.kind == "state":
        return find_us_states(request)
    if param.kind in ("number", "integer"):
        return _explicit_number(param, request)
    if param.kind == "enum":
        lowered = request.lower()
        return [
            o for o in param.schema.get("enum", []) if re.search(rf"\b{re.escape(str(o).lower())}\b", lowered)
        ]
    return []


def fallback_value(param: ParamSpec) -> Any:
    """The value a required parameter gets when nothing says otherwise."""
    if "default" in param.schema and param.schema["default"] is not None:
        return param.schema["default"]
    if param.kind == "enum" and param.schema.get("enum"):
        return param.schema["enum"][0]
    if param.kind == "boolean":
        return False
    return _MISSING


# --- candidates -------------------------------------------------------------------------------------------


def _options(param: ParamSpec, conversation: Conversation) -> list[_Option]:
    clamp = param.kind in ("number", "integer")
    options: list[_Option] = []
    for value in request_values(param, conversation):
        fitted = conform(param, value, clamp=clamp)
        if fitted is not _MISSING and all(fitted != v for v, _ in options):
            options.append((fitted, None))
    if param.kind == "url" and not options:
        ranked = rank_urls(
            [u for r in conversation.results if supplies(r, param.name) for u in url_candidates(r)],
            conversation.request,
        )
        options = [(u.url, u.origin) for u in ranked]
        used = sum(1 for call in conversation.calls if param.name in call.args)
        options = options[: max(0, MAX_URLS_PER_TOOL - used)]
    return options


def _from_results(
    tool: ToolSpec, params: list[ParamSpec], conversation: Conversation
) -> list[tuple[dict[str, Any], Lookup]]:
    """One set of values per earlier result that supplies all of ``params`` from one record."""
    sets: list[tuple[dict[str, Any], Lookup]] = []
    for result in conversation.results:
        if result.name == tool.name or not all(supplies(result, p.name) for p in params):
            continue
        found = lookup(result, [p.name for p in params])
        values = {p.name: conform(p, found.values[p.name]) for p in params if p.name in found.values}
        if len(values) == len(params) and _MISSING not in values.values():
            sets.append((values, found))
    return sets


def fill(tool: ToolSpec, conversation: Conversation) -> Filling:
    """Every argument set the tool could be called with now (including ones already called)."""
    sources = _sources(tool, conversation)
    record_sets = _record_sets(tool, conversation, sources)
    if sources.missing:
        return Filling([], sources.missing, sources.from_results)
    candidates = _candidates(tool, sources, record_sets)
    return Filling(candidates[:MAX_CALLS_PER_TOOL], [], sources.from_results)


@dataclass
class _Sources:
    """Where each parameter of one tool gets its value, as :func:`_sources` sorts them."""

    fixed: dict[str, Any] = field(default_factory=dict)  # one value
    multi: dict[str, list[_Option]] = field(default_factory=dict)  # several (places, URLs)
    from_results: list[ParamSpec] = field(default_factory=list)  # required, for earlier results to fill
    missing: list[ParamSpec] = field(default_factory=list)  # required, and nothing gives a value


def _sources(tool: ToolSpec, conversation: Conversation) -> _Sources:
    """Sort the tool's parameters by where their values come from.

    Optional parameters are set only from the request's own numbers and enum words; the others stay
    with the tool's defaults.
    """
    sources = _Sources()
    for param in tool.params:
        options = _options(param, conversation)
        if not param.required:
            if options and param.kind in ("number", "integer", "enum") and options[0][1] is None:
                sources.fixed[param.name] = options[0][0]
            continue
        if len(options) > 1:
            sources.multi[param.name] = options
        elif options:
            sources.fixed[param.name] = options[0][0]
        elif param.kind in _RECORD_KINDS:
            sources.from_results.append(param)
        elif (value := fallback_value(param)) is not _MISSING:
            sources.fixed[param.name] = value
        else:
            sources.missing.append(param)
    return sources


def _record_sets(
    tool: ToolSpec, conversation: Conversation, sources: _Sources
) -> list[tuple[dict[str, Any], Lookup | None]]:
    """Value sets for the parameters that earlier results fill: one per result record that has them all.

    Without such a record, coordinates written in the request; else each parameter's fallback, which
    moves it to ``sources.fixed`` (or ``sources.missing`` when it has none).
    """
    if not sources.from_results:
        return [({}, None)]
    record_sets: list[tuple[dict[str, Any], Lookup | None]] = list(
        _from_results(tool, sources.from_results, conversation)
    )
    if record_sets:
        return record_sets
    if (numbers := request_numbers_fill(tool, conversation)) is not None:
        return [(numbers, None)]
    for param in sources.from_results:
        value = fallback_value(param)
        if value is _MISSING:
            sources.missing.append(param)
        else:
            sources.fixed[param.name] = value
    return [({}, None)]


def _candidates(
    tool: ToolSpec, sources: _Sources, record_sets: list[tuple[dict[str, Any], Lookup | None]]
) -> list[Candidate]:
    """One call per record set and per value of the first multi-valued parameter (several places or URLs).

    Other multi-valued parameters take their best value; arguments keep the schema's order.
    """
    fixed = dict(sources.fixed)
    driver = next(iter(sources.multi), None)
    for name, options in sources.multi.items():
        if name != driver:
            fixed[name] = options[0][0]
    driver_options: list[_Option] = sources.multi[driver] if driver else [(None, None)]
    candidates: list[Candidate] = []
    for (values, found), (value, origin) in itertools.product(record_sets, driver_options):
        args = {**fixed, **values}
        if driver:
            args[driver] = value
        ordered = {p.name: args[p.name] for p in tool.params if p.name in args}
        candidates.append(Candidate(tool, ordered, found.origin if found else origin, found))
    return candidates


def best_effort_args(tool: ToolSpec, conversation: Conversation) -> dict[str, Any]:
    """Arguments for a call the client forces (``tool_choice``).

    Whatever can be filled is; the tool itself reports what is still missing.
    """
    filling = fill(tool, conversation)
    if filling.candidates:
        return filling.candidates[0].args
    args: dict[str, Any] = {}
    for param in tool.required:
        options = _options(param, conversation)
        if options:
            args[param.name] = options[0][0]
        elif (value := fallback_value(param)) is not _MISSING:
            args[param.name] = value
        elif param.kind in ("string", "place", "state") and conversation.request:
            args[param.name] = conversation.request
    return args


def request_numbers_fill(tool: ToolSpec, conversation: Conversation) -> dict[str, Any] | None:
    """Coordinates written in the request ("forecast for 47.6, -122.3"), or None.

    Used only when the request holds exactly as many numbers as the tool has required (all numeric)
    parameters; they are taken in order.
    """
    numeric = [p for p in tool.required if p.kind in ("number", "integer")]
    numbers = find_numbers(conversation.request)
    if not numeric or len(numbers) != len(numeric) or len(numeric) != len(tool.required):
        return None
    args = {p.name: conform(p, n) for p, n in zip(numeric, numbers, strict=True)}
    return None if _MISSING in args.values() else args
