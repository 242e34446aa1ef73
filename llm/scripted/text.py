"""Text helpers of the scripted model: word terms with light stemming, places, URLs, states, numbers."""

import re

from llm.scripted.lexicon import STOP_WORDS, US_STATES

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[a-z0-9]+")
_URL = re.compile(r"https?://[^\s\"'<>()\[\]{}\\]+")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]*[a-zA-Z])")


def stem(word: str) -> str:
    """A light suffix-stripping stemmer: "alerts"/"alert", "forecasting"/"forecast", "cities"/"city"."""
    w = word.lower()
    if len(w) <= 3:
        return w
    for suffix, replacement in (("ies", "y"), ("ing", ""), ("ed", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)] + replacement
            if suffix != "ies" and len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]  # "running" -> "run"
            break
    else:
        if re.search(r"(?:s|x|z|ch|sh)es$", w):
            w = w[:-2]
        elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]  # "place"/"places" and "hike"/"hiking" meet at "plac", "hik"
    return w


def words(text: str) -> list[str]:
    """Lower-case words of ``text``; ``snake_case`` and ``camelCase`` identifiers are split."""
    text = _CAMEL.sub(" ", text).replace("_", " ").lower()
    return _WORD.findall(text)


def terms(text: str) -> list[str]:
    """Stemmed content words of ``text`` (stop words removed), in order, without duplicates."""
    seen: dict[str, None] = {}
    for word in words(text):
        if len(word) > 1 and word not in STOP_WORDS:
            seen.setdefault(stem(word), None)
    return list(seen)


def normalize_key(key: str) -> str:
    """``"country_code"``, ``"countryCode"`` and ``"Country-Code"`` all become ``"countrycode"``."""
    return re.sub(r"[^a-z0-9]", "", key.lower())


def find_urls(text: str) -> list[str]:
    """URLs in ``text`` in order of appearance, without duplicates or trailing punctuation."""
    seen: dict[str, None] = {}
    for url in _URL.findall(text):
        seen.setdefault(url.rstrip(".,;:!?'\""), None)
    return list(seen)


def find_numbers(text: str) -> list[float]:
    """Numbers written in ``text`` (URLs removed first, so their digits do not count)."""
    return [float(n) for n in _NUMBER.findall(_URL.sub(" ", text))]


# --- places ---------------------------------------------------------------------------------------------

_CALENDAR = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february march april may june july "
    "august september october november december today tonight tomorrow week weekend".split()
)
_PREPOSITION = r"(?:in|for|at|to|near|around|of|from|visiting|visit|about)"
_CAP_WORD = r"[A-Z][\w'’.-]*"
_JOINER = r"(?:de|del|della|la|le|les|du|of|upon|am|an|im|sur|the|y)"
_PHRASE = rf"{_CAP_WORD}(?:\s+(?:{_JOINER}\s+)?{_CAP_WORD})*"
_LIST_SEP = r"\s*(?:,|\band\b|\bor\b|&|\bvs\.?|\bversus\b)\s*"
_PLACE_LIST = re.compile(
    rf"\b{_PREPOSITION}\s+(?:the\s+)?(?P<list>{_PHRASE}(?:{_LIST_SEP}(?:the\s+)?{_PHRASE})*)"
)
_LOWER_PLACE = re.compile(rf"\b{_PREPOSITION}\s+(?P<place>[a-z][a-z'-]+(?:\s+[a-z][a-z'-]+)?)")


def _trim_place(phrase: str) -> str:
    """Drop a trailing date from a phrase: "Paris Next Week" -> "Paris", "Rome on Monday" -> "Rome"."""
    kept: list[str] = []
    for word in phrase.rstrip(".,;:!?").split():
        if kept and word.lower().strip(".,'’") in _CALENDAR | {"next", "this"}:
            break
        kept.append(word)
    return " ".join(kept).rstrip(".,;:!?")


def _is_place_phrase(phrase: str) -> bool:
    first = phrase.split()[0].lower().strip(".'’") if phrase.split() else ""
    return bool(first) and first not in _CALENDAR and first not in STOP_WORDS and phrase != "I"


def _split_place_list(text: str) -> list[str]:
    """``"Seattle and Paris"`` -> two places; ``"Paris, France"`` and ``"Austin, TX"`` -> one each."""
    items = [item.strip() for item in re.split(_LIST_SEP, text) if item.strip()]
    has_conjunction = re.search(r"\b(?:and|or|vs\.?|versus)\b|&", text) is not None
    places: list[str] = []
    for item in items:
        item = re.sub(r"^the\s+", "", item)
        qualifies_previous = places and (
            re.fullmatch(r"[A-Z]{2}", item) or item.lower() in US_STATES or not has_conjunction
        )
        if qualifies_previous:
            places[-1] = f"{places[-1]}, {item}"
        else:
            places.append(item)
    return places


def find_places(text: str) -> list[str]:
    """Place names in a request, best guess first.

    Capitalized phrases after "in/for/to/at/near/..."; else capitalized phrases inside a sentence;
    else lower-case words after such a preposition.
    """
    places: list[str] = []
    for match in _PLACE_LIST.finditer(text):
        for place in map(_trim_place, _split_place_list(match.group("list"))):
            if _is_place_phrase(place) and place not in places:
                places.append(place)
    if places:
        return places
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        for match in re.finditer(_PHRASE, sentence):
            phrase = match.group()
            if match.start() == 0:  # a capital that only starts the sentence says nothing
                phrase = phrase.partition(" ")[2]
            if not phrase or not _is_place_phrase(phrase):
                continue
            place = _trim_place(phrase)
            if place not in places:
                places.append(place)
    if places:
        return places
    for match in _LOWER_PLACE.finditer(text):
        kept = [w for w in match.group("place").split() if w not in STOP_WORDS and w not in _CALENDAR]
        if kept and kept == match.group("place").split()[: len(kept)]:
            places.append(" ".join(w.capitalize() for w in kept))
    return places


def find_us_states(text: str) -> list[str]:
    """Two-letter codes of US states named in ``text`` ("Texas", "TX", "New York")."""
    found: list[str] = []
    for token in re.findall(r"\b[A-Z]{2}\b", text):
        if token in US_STATES.values() and token not in found:
            found.append(token)
    lowered = text.lower()
    for name in sorted(US_STATES, key=len, reverse=True):
        if re.search(rf"\b{re.escape(name)}\b", lowered):
            code = US_STATES[name]
            if code not in found:
                found.append(code)
            lowered = re.sub(rf"\b{re.escape(name)}\b", " ", lowered)  # "west virginia" is not "virginia"
    return found


def us_state_code(value: str) -> str | None:
    """``"WA"`` or ``"Washington"`` -> ``"WA"``; anything else -> None."""
    value = value.strip()
    if value.upper() in US_STATES.values() and len(value) == 2:
        return value.upper()
    return US_STATES.get(value.lower())
