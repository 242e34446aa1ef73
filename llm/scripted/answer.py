"""The scripted model's text answers: quotes of the turn's tool results, or an honest "I can't".

The model understands nothing, so it never paraphrases: it quotes what the tools returned (the parts
most related to the request, with any provenance note such as a sample-data label) and says that the
data came from tools and that the answer was composed by an offline scripted model.
"""

import json
import re
from typing import Any

from llm.scripted.conversation import Conversation, ToolResult
from llm.scripted.lexicon import PROVENANCE_KEYS
from llm.scripted.text import find_urls, normalize_key, terms
from llm.scripted.tools import ToolSpec

MAIN_BUDGET = 1500  # characters quoted from a result that answers the request
SUPPORT_BUDGET = 300  # from a result that only fed later calls (a geocode used for a forecast)
_LABEL_KEYS = ("name", "title", "label", "period", "date", "day", "time", "starttime", "event", "headline")
_LINK_KEYS = ("url", "link", "href", "uri")
_TEXT_HINTS = ("detailed", "description", "summary", "snippet", "text", "forecast", "content", "headline")


def compose_answer(
    conversation: Conversation,
    tools: list[ToolSpec],
    relevant: list[ToolSpec],
    notes: list[str],
    model_name: str,
) -> str:
    """The text answer of a turn: quotes of its tool results, else why there are none.

    Args:
        conversation: the request and the turn's tool calls and results.
        tools: every tool the client offered.
        relevant: the tools the request is about.
        notes: what the policy has to say (a missing place, a tool that cannot be used).
        model_name: how the answer names the model (it always says it is an offline model).
    """
    results = conversation.results
    if results:
        return _from_results(conversation, results, notes, model_name)
    if notes:
        return " ".join(notes) + f"\n\n(I am {model_name}, an offline scripted model, not a real LLM.)"
    if not tools:
        return (
            f"I am {model_name}, a deterministic offline stand-in for a language model: no real LLM is "
            "running here, so I cannot answer open questions on my own. I can call tools when they are "
            "offered; for real answers, run the /llm app with the vllm or upstream backend."
        )
    if relevant:  # relevant tools exist but there was nothing new to call
        return f"I have nothing further to look up with {_names(relevant)}. (I am {model_name}, offline.)"
    abilities = "; ".join(f"{t.name}: {_first_sentence(t.description)}" for t in tools[:6])
    return (
        f"I am {model_name}, an offline scripted model (not a real LLM), and none of my tools fits this "
        f"request, so I have no data to answer it. My tools: {abilities}."
    )


def _from_results(
    conversation: Conversation, results: list[ToolResult], notes: list[str], model_name: str
) -> str:
    parts = [f"Here is what the tools returned ({_names(results)}):"]
    for result in results:
        later = conversation.calls[conversation.calls.index(result) + 1 :]
        budget = SUPPORT_BUDGET if _fed_later_calls(result, later) else MAIN_BUDGET
        args = ", ".join(f"{k}={v!r}" for k, v in result.args.items())
        if result.ok:
            quote = render_result(result, conversation.request, budget)
            parts.append(f"{result.name}({args}):\n{quote}")
        else:
            parts.append(f"{result.name}({args}) failed: {_clip(result.content or '', SUPPORT_BUDGET)}")
    parts += notes
    parts.append(
        f"(The data above came from tool results; this answer was composed by {model_name}, an offline "
        "scripted model that quotes tools and does not write its own text.)"
    )
    return "\n\n".join(parts)


def _names(items: list[Any]) -> str:
    return ", ".join(dict.fromkeys(item.name for item in items))


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0].rstrip(".") if text else "(no description)"


def _clip(text: str, budget: int) -> str:
    text = re.sub(r"[ \t]+", " ", text.strip())
    return text if len(text) <= budget else text[: budget - 1].rsplit(" ", 1)[0] + "…"


def _scalars(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [s for v in data.values() for s in _scalars(v)]
    if isinstance(data, list):
        return [s for v in data for s in _scalars(v)]
    return [] if data is None else [str(data)]


def _fed_later_calls(result: ToolResult, later: list[ToolResult]) -> bool:
    """Whether later calls in the turn took values from ``result`` (then it is quoted briefly)."""
    values = set(_scalars(result.data)) | set(find_urls(result.content or ""))
    return any(str(v) in values or _number_in(v, values) for call in later for v in call.args.values())


def _number_in(value: Any, values: set[str]) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    for text in values:
        try:
            if float(text) == float(value):
                return True
        except ValueError:
            continue
    return False


# --- rendering a result -------------------------------------------------------------------------------


def render_result(result: ToolResult, request: str, budget: int) -> str:
    """A quote of ``result`` within ``budget`` characters, provenance notes always included."""
    data = result.data
    if data is None:
        return _quote_text(result.content or "", request, budget)
    notes = list(dict.fromkeys(_provenance(data)))
    body = "\n".join(_render(data, depth=0))
    text = _quote_text(body, request, budget)
    missing_notes = [n for n in notes if n not in text]
    return "\n".join([text, *(f"Note: {n}" for n in missing_notes)])


def _provenance(data: Any) -> list[str]:
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if normalize_key(key) in PROVENANCE_KEYS and isinstance(value, str):
                found.append(value)
            else:
                found += _provenance(value)
    elif isinstance(data, list):
        for item in data:
            found += _provenance(item)
    return found


def _render(data: Any, depth: int) -> list[str]:
    """Readable lines: ``key: value`` for scalars, one ``- label: text`` line per listed record."""
    if isinstance(data, list):
        return [line for item in data for line in _render_item(item, depth)]
    if not isinstance(data, dict):
        return [str(data)]
    lines: list[str] = []
    nested: list[tuple[str, Any]] = []
    for key, value in data.items():
        if normalize_key(key) in PROVENANCE_KEYS:
            continue
        if isinstance(value, dict | list):
            nested.append((key, value))
        elif value is not None and value != "":
            lines.append(f"{key}: {value}")
    for key, value in nested:
        inner = _render(value, depth + 1)
        if inner:
            lines.append(f"{key}:")
            lines += ["  " * (depth + 1) + line for line in inner]
    return lines


def _render_item(item: Any, depth: int) -> list[str]:
    if not isinstance(item, dict):
        return [f"- {item}"]
    strings = {k: v for k, v in item.items() if isinstance(v, str) and v.strip()}
    label_key = next((k for k in strings if normalize_key(k) in _LABEL_KEYS), None)
    text_keys = [k for k in strings if k != label_key and any(h in normalize_key(k) for h in _TEXT_HINTS)]
    text_key = max(text_keys, key=lambda k: len(strings[k])) if text_keys else None
    if label_key and text_key:
        link = next((v for k, v in strings.items() if normalize_key(k) in _LINK_KEYS), None)
        label, text = strings[label_key], strings[text_key]
        line = text if text.startswith(label) else f"{label}: {text}"
        return [f"- {line}" + (f" ({link})" if link else "")]
    compact = ", ".join(f"{k}={json.dumps(v) if isinstance(v, dict | list) else v}" for k, v in item.items())
    return [f"- {compact}"]


def _quote_text(text: str, request: str, budget: int) -> str:
    """The whole text if it fits, else the lines that matter most for the request.

    Those are its first line, the lines sharing words with the request, then the following lines in
    order while they fit; quoted in their original order.
    """
    lines: list[str] = []
    for line in text.strip().splitlines():
        pieces = re.split(r"(?<=[.!?])\s+", line.rstrip()) if len(line) > 300 else [line.rstrip()]
        lines += [piece for piece in pieces if piece.strip()]
    if sum(len(line) + 1 for line in lines) <= budget:
        return "\n".join(lines)
    wanted = set(terms(request))
    ranked = sorted(range(1, len(lines)), key=lambda i: (-len(wanted & set(terms(lines[i]))), i))
    keep: dict[int, str] = {0: _clip(lines[0], budget)} if lines else {}
    used = len(keep.get(0, ""))
    for i in ranked:
        room = budget - used - 1
        if len(lines[i]) > room:  # keep an unbroken run rather than scattered short lines
            if room >= 80:
                keep[i] = _clip(lines[i], room)
            break
        keep[i] = lines[i]
        used += len(lines[i]) + 1
    return "\n".join(keep[i] for i in sorted(keep)) + "\n…"
