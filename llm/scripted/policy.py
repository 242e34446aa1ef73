"""The scripted model's decision for one completion: call tools, or answer in text.

Per completion (one "round" of an agent loop):

1. find the tools the latest user request is about (:func:`llm.scripted.tools.match_tools`); a
   follow-up that names only a place or URL ("and in Paris?") is read with the previous request;
2. fill each one's arguments (:func:`llm.scripted.arguments.fill`); every argument set not yet called in
   this turn is called now, all in one assistant message (one call per place, per URL, per earlier
   result that supplied values); of interchangeable tools only one per place is called, chosen by the
   place's country (:func:`llm.scripted.tools.scope_preference`);
3. a relevant tool whose required arguments nothing provides yet *waits*: a tool that can provide them
   is called first. A provider is a tool whose name or description mentions the missing parameter
   ("Find latitude/longitude of a place" for ``latitude``), or, for facts about a place (coordinates,
   state, country), any tool taking a place name. So "weather in Seattle" runs
   ``geocode("Seattle")``, then the forecast with the coordinates from its result, then answers;
4. when nothing new is left to call, the answer quotes the turn's tool results
   (:func:`llm.scripted.answer.compose_answer`).

The same call (tool and arguments) is never made twice in a turn, and a turn stops calling tools after
:data:`MAX_ROUNDS` rounds.
"""

from dataclasses import dataclass, field
from typing import Any

from llm.scripted.answer import compose_answer
from llm.scripted.arguments import Candidate, best_effort_args, fill
from llm.scripted.conversation import Conversation, call_key
from llm.scripted.facts import country_is_us
from llm.scripted.text import find_places, find_urls, find_us_states, normalize_key, stem, words
from llm.scripted.tools import Match, ParamSpec, ToolSpec, alternatives, match_tools, scope_preference

MAX_ROUNDS = 6
_UNUSABLE = 9
# Parameters that describe a place and that a tool taking a place name can therefore provide.
_PLACE_FACTS = frozenset(
    "latitude lat longitude lon lng long state statecode country countrycode zip zipcode postalcode "
    "timezone elevation".split()
)


@dataclass
class PlannedCall:
    """A tool call the model makes in this completion: the tool's name and its arguments."""

    name: str
    args: dict[str, Any]


@dataclass
class Decision:
    """The outcome of one completion: the tool calls to make, or else the text answer."""

    calls: list[PlannedCall] = field(default_factory=list)
    answer: str | None = None


@dataclass
class _Plan:
    candidates: list[Candidate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, candidate: Candidate) -> None:
        key = call_key(candidate.tool.name, candidate.args)
        if all(call_key(c.tool.name, c.args) != key for c in self.candidates):
            self.candidates.append(candidate)


def decide(
    conversation: Conversation,
    tools: list[ToolSpec],
    *,
    tool_choice: str | None = None,
    forced_tool: str | None = None,
    parallel_tool_calls: bool = True,
    model_name: str = "scripted model",
) -> Decision:
    """What to answer: tool calls, or a text answer (see the module docstring).

    Args:
        conversation: the request and the current turn's calls.
        tools: the tools the client offered.
        tool_choice: ``"none"``, ``"auto"``, ``"required"`` or None (OpenAI's ``tool_choice`` as a word).
        forced_tool: the function the client's ``tool_choice`` names, if it names one.
        parallel_tool_calls: False makes at most one call per completion.
        model_name: how the answer names the model.
    """
    if forced_tool is not None:
        tool = next(t for t in tools if t.name == forced_tool)
        new = [
            c for c in fill(tool, conversation).candidates if not conversation.was_called(tool.name, c.args)
        ]
        calls = [PlannedCall(c.tool.name, c.args) for c in new] or [
            PlannedCall(tool.name, best_effort_args(tool, conversation))
        ]
        return Decision(calls[: None if parallel_tool_calls else 1])
    if not tools or tool_choice == "none":
        return Decision(answer=compose_answer(conversation, tools, [], [], model_name))

    matches = match_tools(conversation.request, tools)
    if not matches and conversation.earlier_requests and _names_something(conversation.request):
        # a follow-up naming only a new place or URL ("and in Paris?") keeps the previous topic
        matches = match_tools(f"{conversation.request} {conversation.earlier_requests[0]}", tools)
    plan = _plan(conversation, tools, matches)
    calls = [PlannedCall(c.tool.name, c.args) for c in plan.candidates]
    if not calls and tool_choice == "required":
        calls = [_forced_call(conversation, [m.tool for m in matches] + tools)]
    if calls:
        return Decision(calls[: None if parallel_tool_calls else 1])
    return Decision(
        answer=compose_answer(conversation, tools, [m.tool for m in matches], plan.notes, model_name)
    )


def _names_something(text: str) -> bool:
    return bool(find_places(text) or find_urls(text) or find_us_states(text))


def _forced_call(conversation: Conversation, preference: list[ToolSpec]) -> PlannedCall:
    """A call for a client that requires one when nothing is useful.

    The first tool (relevant ones first) whose arguments can be filled, else the first with whatever
    can be filled.
    """
    for tool in preference:
        if candidates := fill(tool, conversation).candidates:
            return PlannedCall(tool.name, candidates[0].args)
    return PlannedCall(preference[0].name, best_effort_args(preference[0], conversation))


def _plan(conversation: Conversation, tools: list[ToolSpec], matches: list[Match]) -> _Plan:
    plan = _Plan()
    if conversation.rounds >= MAX_ROUNDS:
        plan.notes.append(f"I stopped calling tools after {MAX_ROUNDS} rounds.")
        return plan
    waiting: list[tuple[ToolSpec, list[ParamSpec]]] = []
    for group in alternatives(matches):
        fillings = [(tool, fill(tool, conversation)) for tool in group]
        candidates = [c for _, f in fillings for c in f.candidates]
        if not candidates:
            waiting.append((group[0], fillings[0][1].missing))
            continue
        for candidate in _choose(group, candidates, conversation, plan):
            plan.add(candidate)
        # Values from results may have more sources still to call (the second city of a comparison
        # when parallel tool calls are off).
        for candidate in _providers(group[0], fillings[0][1].from_results, tools, conversation, depth=0)[0]:
            plan.add(candidate)
    for tool, missing in waiting:
        if any(call.name == tool.name for call in conversation.calls):
            continue  # called earlier in the turn; what it could use is used up
        providers, from_user = _providers(tool, missing, tools, conversation, depth=2)
        for candidate in providers:
            plan.add(candidate)
        if not providers:
            plan.notes.append(_missing_note(tool, missing, from_user, conversation))
    return plan


def _choose(
    group: list[ToolSpec], candidates: list[Candidate], conversation: Conversation, plan: _Plan
) -> list[Candidate]:
    """New calls among ``candidates``; of interchangeable tools, the best one per argument set."""
    by_args: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        by_args.setdefault(call_key("", candidate.args), []).append(candidate)
    chosen: list[Candidate] = []
    for options in by_args.values():
        called = [c for c in options if conversation.was_called(c.tool.name, c.args)]
        if any(conversation.call_ok(c.tool.name, c.args) for c in called):
            continue  # done; a failed call lets an alternative try
        remaining = [c for c in options if c not in called]
        if not remaining:
            continue
        in_us = country_is_us(remaining[0].found) if remaining[0].found else None
        best = min(remaining, key=lambda c: (scope_preference(c.tool, in_us), group.index(c.tool)))
        if scope_preference(best.tool, in_us) >= _UNUSABLE:
            plan.notes.append(f"{best.tool.name} only covers the United States, and this place is elsewhere.")
            continue
        chosen.append(best)
    return chosen


def _provides(tool: ToolSpec, param: ParamSpec) -> bool:
    mentioned = {stem(w) for w in words(param.name)} & tool.terms
    takes_place = any(p.kind == "place" for p in tool.required)
    return bool(mentioned) or (normalize_key(param.name) in _PLACE_FACTS and takes_place)


def _providers(
    consumer: ToolSpec,
    missing: list[ParamSpec],
    tools: list[ToolSpec],
    conversation: Conversation,
    depth: int,
) -> tuple[list[Candidate], list[ParamSpec]]:
    """New calls of tools that can provide ``missing``, and what only the user can give.

    Tools are tried in order, recursively to ``depth`` (a provider may need a provider); what only the
    user can give is a place or query a provider needs.
    """
    found: list[Candidate] = []
    from_user = [p for p in missing if p.kind in ("place", "query")]
    for param in missing:
        if param in from_user:
            continue
        for tool in (t for t in tools if t.name != consumer.name and _provides(t, param)):
            filling = fill(tool, conversation)
            new = [c for c in filling.candidates if not conversation.was_called(tool.name, c.args)]
            if new:
                found += new
                break
            if filling.candidates:
                break  # it was called and did not provide the value; do not flail through others
            if depth > 0:
                deeper, user_params = _providers(tool, filling.missing, tools, conversation, depth - 1)
                from_user += [p for p in user_params if p not in from_user]
                if deeper:
                    found += deeper
                    break
    return found, from_user


def _missing_note(
    tool: ToolSpec, missing: list[ParamSpec], from_user: list[ParamSpec], conversation: Conversation
) -> str:
    if any(p.kind == "place" for p in [*missing, *from_user]):
        return f"To use {tool.name} I need a place name; please say which place you mean."
    described = ", ".join(
        p.name + (f" ({p.description.rstrip('.')})" if p.description else "") for p in missing
    )
    failed = [c.name for c in conversation.calls if c.answered and not c.ok]
    reason = f" ({', '.join(failed)} failed)" if failed else ""
    return f"I could not use {tool.name}: nothing gave me {described}{reason}."
