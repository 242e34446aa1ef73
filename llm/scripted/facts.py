"""Reading values out of tool results: keyed values in JSON records, URLs, country of a place.

Values flow forward through a turn: a result can supply a parameter only if the call that produced it
did not already take that parameter as input (a forecast echoing its coordinates is no new fact, and a
fetched page's links do not trigger more fetches).
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from llm.scripted.conversation import ToolResult
from llm.scripted.lexicon import KEY_ALIASES, US_COUNTRY_VALUES
from llm.scripted.text import find_urls, normalize_key, terms


def key_matches(param: str, key: str) -> bool:
    """Whether a result key answers a parameter: same name, or a known alias (``lat``/``latitude``)."""
    p, k = normalize_key(param), normalize_key(key)
    return p == k or k in KEY_ALIASES.get(p, ()) or p in KEY_ALIASES.get(k, ())


def supplies(result: ToolResult, param: str) -> bool:
    """Whether ``result`` may supply ``param``: it must not be an echo of the call's own input."""
    return result.answered and result.ok and not any(key_matches(param, arg) for arg in result.args)


def iter_records(data: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``data``, depth first in document order (the first match of a list wins)."""
    if isinstance(data, dict):
        yield data
        for value in data.values():
            yield from iter_records(value)
    elif isinstance(data, list):
        for item in data:
            yield from iter_records(item)


@dataclass
class Lookup:
    """Values one tool result gives for some parameters, and the JSON record they came from."""

    origin: ToolResult
    values: dict[str, Any]
    record: dict[str, Any] | None


def lookup(result: ToolResult, params: list[str]) -> Lookup:
    """The record of ``result`` that answers most of ``params`` (ties: the first), with its values."""
    best = Lookup(result, {}, None)
    data = result.data
    for record in iter_records(data):
        values: dict[str, Any] = {}
        for param in params:
            for key, value in record.items():
                if key_matches(param, key) and not isinstance(value, dict | list) and value is not None:
                    values[param] = value
                    break
        if len(values) > len(best.values):
            best = Lookup(result, values, record)
    if data is None and result.content:
        values = {}
        for param in params:
            names = [param, *KEY_ALIASES.get(normalize_key(param), ())]
            for name in names:
                match = re.search(
                    rf"\b{re.escape(name)}\b\W{{0,3}}[:=]\s*(-?\d+(?:\.\d+)?)", result.content, re.I
                )
                if match:
                    values[param] = float(match.group(1))
                    break
        if len(values) > len(best.values):
            best = Lookup(result, values, None)
    return best


def country_is_us(found: Lookup) -> bool | None:
    """Whether the place behind a lookup is in the US; None when the result does not say.

    A country field of the lookup's record decides, else the first one anywhere in the result.
    """
    candidates = [found.record] if found.record is not None else []
    candidates += list(iter_records(found.origin.data))
    for record in candidates:
        for key, value in record.items():
            if key_matches("country", key) and isinstance(value, str) and value.strip():
                return value.strip().lower() in US_COUNTRY_VALUES
    return None


@dataclass
class UrlCandidate:
    """A URL found in a tool result, with the text around it that says what it is (title, snippet)."""

    url: str
    origin: ToolResult
    context: str


def url_candidates(result: ToolResult) -> list[UrlCandidate]:
    """URLs in a result with the text around them (a search hit's title and snippet)."""
    data = result.data
    found: dict[str, UrlCandidate] = {}
    if data is not None:
        for record in iter_records(data):
            strings = [v for v in record.values() if isinstance(v, str)]
            for text in strings:
                for url in find_urls(text):
                    context = " ".join(s for s in strings if s != text)
                    found.setdefault(url, UrlCandidate(url, result, context))
    else:
        for line in (result.content or "").splitlines():
            for url in find_urls(line):
                found.setdefault(url, UrlCandidate(url, result, line))
    return list(found.values())


def rank_urls(candidates: list[UrlCandidate], request: str) -> list[UrlCandidate]:
    """Most relevant first: words shared between a URL's context and the request; ties keep order."""
    wanted = set(terms(request))
    scored = [(-len(wanted & set(terms(c.context + " " + c.url))), i, c) for i, c in enumerate(candidates)]
    return [c for _, _, c in sorted(scored, key=lambda item: item[:2])]
