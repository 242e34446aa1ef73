"""Tool specs as the scripted model sees them, and which tools a request is about.

Relevance is word overlap between the request and a tool's name and description (parameter texts are
left out: their examples would make every tool look relevant). Request words bring related words along
(:data:`~llm.scripted.lexicon.RELATED`), so "weather this week" reaches a "forecast" tool. Then:

- a tool is dropped when another tool that shares some matched words matches strictly more of the
  request's own words, or the same own words and strictly more related words ("weather alerts" keeps
  the alerts tool, not the forecast tool; "weather this week" keeps forecast tools, not alerts);
  except where such an extra word is only in the other tool's description and itself brings the
  dropped tool's words along: "plan a trip" asks for the weather (RELATED), so a packing tool
  described as "for a trip" does not push out the forecast tool, while "what to pack" does (a
  "packing" tool is named for it);
- tools with the same matched words and the same required parameters are *alternatives* (a US-only and
  a worldwide forecast); the policy calls one of them per place, see :func:`scope_preference`;
- a tool named in a matched tool's description is a follow-up ("Read a result's page with fetch_url").
"""

import re
from dataclasses import dataclass, field
from typing import Any

from llm.scripted.lexicon import (
    PLACE_WORDS,
    QUERY_WORDS,
    RELATED,
    STATE_WORDS,
    URL_WORDS,
    US_SCOPE_PATTERN,
    WEAK_RELATED,
    WORLD_SCOPE_PATTERN,
)
from llm.scripted.protocol import ToolDefinition
from llm.scripted.text import normalize_key, stem, terms, words

_PLACE = {stem(w) for w in PLACE_WORDS}
_URL = {stem(w) for w in URL_WORDS}
_QUERY = {stem(w) for w in QUERY_WORDS}
_STATE = {stem(w) for w in STATE_WORDS}
_RELATED = {stem(k): {stem(v) for v in vs} for k, vs in RELATED.items()}
_WEAK = {k: {stem(v) for v in vs} for k, vs in WEAK_RELATED.items()}


def _schema_type(schema: dict[str, Any]) -> str | None:
    """The first non-null JSON type of a schema (``anyOf``/``oneOf``/type lists included)."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None:
        for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
            if isinstance(branch, dict) and (found := _schema_type(branch)):
                return found
    return kind


def _deref(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """Inline a local ``$ref`` (pydantic puts enums in ``$defs``); the referring schema's keys win."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in definitions:
        target = definitions[ref.rsplit("/", 1)[-1]]
        return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    branches = [_deref(b, definitions) if isinstance(b, dict) else b for b in schema.get("anyOf", [])]
    return {**schema, "anyOf": branches} if branches else schema


def resolve_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter schema with its first non-null ``anyOf`` branch merged in (pydantic's Optional[X])."""
    for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
        if isinstance(branch, dict) and branch.get("type") != "null":
            return {**branch, **{k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}}
    return schema


@dataclass
class ParamSpec:
    """One parameter of a tool: its schema and the kind of value it wants (:func:`classify`)."""

    name: str
    schema: dict[str, Any]
    required: bool
    kind: str  # number | integer | boolean | enum | url | state | place | query | string | other
    description: str = ""
    tool_description: str = ""  # often says what the parameter wants ("for a US state (two-letter code)")

    @property
    def name_words(self) -> set[str]:
        """The stems of the words of the parameter's name."""
        return {stem(w) for w in words(self.name)}


def classify(name: str, schema: dict[str, Any]) -> str:
    """What kind of value a parameter wants, from its JSON type, name and description."""
    kind = _schema_type(schema)
    if "enum" in schema:
        return "enum"
    if kind in ("number", "integer", "boolean"):
        return kind
    if kind not in (None, "string"):
        return "other"
    if schema.get("format") in ("uri", "url", "iri"):
        return "url"
    described = {
        stem(w) for w in words(str(schema.get("description", "")) + " " + str(schema.get("title", "")))
    }
    for vocabulary in ({stem(w) for w in words(name)}, described):
        for word_set, label in ((_URL, "url"), (_STATE, "state"), (_PLACE, "place"), (_QUERY, "query")):
            if vocabulary & word_set:
                return label
    return "string"


# "(e.g. What is the weather in Seattle this week?)": examples show arguments, not what a tool is about;
# their words (places, dates) would make unrelated tools look relevant, so matching skips them.
EXAMPLES_PATTERN = re.compile(r"\((?:e\.g\.|for example|example:)[^)]*\)", re.I)


@dataclass
class ToolSpec:
    """A tool as the model sees it: its parameters, its scope and the terms relevance is matched on."""

    name: str
    description: str
    params: list[ParamSpec]
    scope: str | None  # "us" when the description limits it to the US, "world" when it says worldwide
    terms: set[str] = field(default_factory=set)
    name_terms: set[str] = field(default_factory=set)

    @property
    def required(self) -> list[ParamSpec]:
        """The required parameters, in schema order."""
        return [p for p in self.params if p.required]

    @property
    def signature(self) -> frozenset[str]:
        """The normalized names of the required parameters; interchangeable tools share it."""
        return frozenset(normalize_key(p.name) for p in self.required)


def tool_spec(tool: ToolDefinition) -> ToolSpec:
    """The :class:`ToolSpec` of an offered tool, local ``$ref`` and Optional schemas resolved."""
    function = tool.function
    parameters = function.parameters or {}
    required = set(parameters.get("required", []))
    params = []
    definitions = {**parameters.get("definitions", {}), **parameters.get("$defs", {})}
    for name, raw in (parameters.get("properties") or {}).items():
        schema = resolve_schema(_deref(raw if isinstance(raw, dict) else {}, definitions))
        description = str(schema.get("description", ""))
        kind = classify(name, schema)
        params.append(
            ParamSpec(name, schema, name in required, kind, description, function.description or "")
        )
    description = function.description or ""
    scope = tool_scope(description, function.name)
    topic = EXAMPLES_PATTERN.sub(" ", description)
    return ToolSpec(
        function.name,
        description,
        params,
        scope,
        set(terms(f"{function.name} {topic}")),
        set(terms(function.name)),
    )


def tool_scope(description: str, name: str) -> str | None:
    """Where a tool works: ``"us"``, ``"world"`` or None, from what its description says first.

    The first sentence states the tool's purpose; later sentences may mention fallbacks ("for
    coordinates outside the US it returns the worldwide forecast"). When the description says neither,
    the name decides ("get_world_forecast").
    """
    first_sentence = re.split(r"(?<=[.!?])\s", description.strip(), maxsplit=1)[0]
    for text in (first_sentence, description, " ".join(words(name))):
        us = re.search(US_SCOPE_PATTERN, text)
        world = re.search(WORLD_SCOPE_PATTERN, text, re.I)
        if us or world:
            return "us" if us and (not world or us.start() < world.start()) else "world"
    return None


@dataclass
class Match:
    """A tool the request is about, and which of its words matched."""

    tool: ToolSpec
    own: frozenset[str]  # tool words the request itself contains
    all: frozenset[str]  # plus words related to the request's words


def match_tools(request: str, tools: list[ToolSpec]) -> list[Match]:
    """Tools the request is about, after dropping dominated tools (see the module docstring)."""
    own = set(terms(request))
    related = set().union(*(_RELATED.get(t, set()) for t in own)) if own else set()
    matches = [Match(t, frozenset(own & t.terms), frozenset((own | related) & t.terms)) for t in tools]
    matches = [m for m in matches if m.all]
    if not matches:  # question words only: "what is X?" -> a search-like tool, if there is one
        weak = set().union(*(_WEAK.get(w, set()) for w in words(request))) if request else set()
        matches = [Match(t, frozenset(), frozenset(weak & t.terms)) for t in tools]
        matches = [m for m in matches if m.all]
    kept = [m for m in matches if not any(_dominates(other, m) for other in matches if other is not m)]
    return _with_follow_ups(kept, tools)


def _with_follow_ups(matches: list[Match], tools: list[ToolSpec]) -> list[Match]:
    """Add the tools that a matched tool's description names ("Read a result's page with fetch_url").

    They are the next step of the same task, called once earlier results fill their arguments.
    """
    names = {m.tool.name for m in matches}
    follow_ups: list[Match] = []
    for match in matches:
        for tool in tools:
            if tool.name not in names and re.search(
                rf"(?<![\w-]){re.escape(tool.name)}(?![\w-])", match.tool.description
            ):
                follow_ups.append(Match(tool, frozenset(), match.all))
                names.add(tool.name)
    return matches + follow_ups


def _dominates(a: Match, b: Match) -> bool:
    if not a.all & b.all:
        return False
    if b.own < a.own:
        return not _brings_along(a, b)
    return b.own == a.own and b.all < a.all


def _brings_along(a: Match, b: Match) -> bool:
    """Whether a request word that only ``a`` matches asks for ``b`` too (see the module docstring).

    Only a word from ``a``'s description counts: a tool named for the word ("packing" for "pack") is
    the one the word asks for.
    """
    return any(word not in a.tool.name_terms and _RELATED.get(word, set()) & b.all for word in a.own - b.own)


def alternatives(matches: list[Match]) -> list[list[ToolSpec]]:
    """Groups of interchangeable tools: the same matched words and the same required parameters."""
    groups: dict[tuple[frozenset[str], frozenset[str]], list[ToolSpec]] = {}
    for m in matches:
        groups.setdefault((m.all, m.tool.signature), []).append(m.tool)
    return list(groups.values())


def scope_preference(tool: ToolSpec, in_us: bool | None) -> int:
    """How well ``tool`` fits a place in the US (``in_us``), elsewhere or unknown; lower is better.

    A US place prefers a US-only tool (usually the more detailed source); elsewhere a worldwide one;
    unknown: a tool that works anywhere. A US-only tool is unusable outside the US.
    """
    if tool.scope == "us":
        return 0 if in_us else (9 if in_us is False else 2)
    if tool.scope == "world":
        return 1 if in_us else 0
    return 1
