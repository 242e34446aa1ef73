"""Sample Brave Search API and web pages for offline mode.

Routes (below the sample upstream's own route, ``/sample-upstream`` on Serve):
``/brave/res/v1/web/search`` answers in Brave's shape from a small recorded index (data/web/); result
URLs are absolute URLs of this same server, built from the request, so ``fetch_url`` can read them.
``/pages/...`` serves travel guides (Lisbon, Kyoto, Seattle), a long page, an image, a page that
redirects and a page ``/robots.txt`` disallows. robots.txt only means something at a host root: behind
the Serve proxy this server lives at ``/sample-upstream``, so crawlers get the proxy's 404 for
``/robots.txt`` (no rules); tests of the disallow rule serve this app at a host root with uvicorn.
Everything served is labelled SAMPLE DATA and carries the ``X-Data-Notice`` header.
"""

import json
import mimetypes
import re
import unicodedata
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from mcp_servers.http_upstream import DATA_NOTICE_HEADER
from mcp_servers.web_brave import MAX_COUNT, MAX_QUERY_CHARS, SEARCH_PATH
from mcp_servers.web_search import SAMPLE_BRAVE_PATH

DATA_DIR = Path(__file__).parent / "data" / "web"
PAGES_DIR = DATA_DIR / "pages"
NOTICE = "SAMPLE DATA from the bundled offline sample upstream server; not real search results or web pages."
HEADERS = {DATA_NOTICE_HEADER: NOTICE}
# Moved pages: old path below /pages -> relative Location (relative, so it works below any route prefix).
REDIRECTS = {"old-lisbon-guide.html": "lisbon.html"}
STOPWORDS = frozenset(
    "a an and are best do for from how i in is it me of on or the to what when where which".split()
)

router = APIRouter(tags=["sample web"])


@cache
def _index() -> list[dict[str, Any]]:
    index: dict[str, Any] = json.loads((DATA_DIR / "search_results.json").read_text(encoding="utf-8"))
    results: list[dict[str, Any]] = index["results"]
    return results


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def _terms(text: str) -> list[str]:
    return [word for word in re.findall(r"[a-z0-9]+", _fold(text)) if word not in STOPWORDS]


def _score(entry: dict[str, Any], terms: list[str]) -> int:
    keywords = set(entry["keywords"])
    words = set(_terms(entry["title"] + " " + entry["description"]))
    return sum(2 if term in keywords else 1 if term in words else 0 for term in terms)


def _highlight(text: str, terms: list[str]) -> str:
    """Brave wraps query matches in <strong>."""
    if not terms:
        return text
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, terms)) + r")\b", re.IGNORECASE)
    return pattern.sub(r"<strong>\1</strong>", text)


def _brave_result(entry: dict[str, Any], base_url: str, terms: list[str]) -> dict[str, Any]:
    url = base_url + entry["path"]
    parts = urlsplit(url)
    return {
        "title": entry["title"],
        "url": url,
        "is_source_local": False,
        "is_source_both": False,
        "description": _highlight(entry["description"], terms),
        "page_age": entry["page_age"],
        "age": entry["age"],
        "profile": {"name": "Sample upstream", "url": base_url, "long_name": parts.netloc, "img": ""},
        "language": "en",
        "family_friendly": True,
        "type": "search_result",
        "subtype": "generic",
        "is_live": False,
        "meta_url": {
            "scheme": parts.scheme,
            "netloc": parts.netloc,
            "hostname": parts.hostname,
            "favicon": "",
            "path": "› " + " › ".join(p for p in entry["path"].split("/") if p),
        },
    }


def _brave_error(detail: str, parameter: str) -> JSONResponse:
    body = {
        "type": "ErrorResponse",
        "error": {
            "id": "sample-0000",
            "status": 422,
            "code": "VALIDATION",
            "detail": detail,
            "meta": {"errors": [{"type": "value_error", "loc": ["query", parameter], "msg": detail}]},
        },
        "time": 0,
    }
    return JSONResponse(body, status_code=422, headers=HEADERS)


@router.get(SAMPLE_BRAVE_PATH + SEARCH_PATH)
async def brave_web_search(
    request: Request, q: str = Query(default=""), count: int = Query(default=20)
) -> JSONResponse:
    """Brave's web search: the index entries matching the query, best first (no key needed here)."""
    if not q.strip() or len(q) > MAX_QUERY_CHARS:
        return _brave_error(f"q must be 1 to {MAX_QUERY_CHARS} characters", "q")
    if not 1 <= count <= MAX_COUNT:
        return _brave_error(f"count must be between 1 and {MAX_COUNT}", "count")
    terms = _terms(q)
    scored = [(score, entry) for entry in _index() if (score := _score(entry, terms))]
    scored.sort(key=lambda pair: -pair[0])  # stable: ties keep the index order
    base_url = str(request.base_url)  # includes the route prefix (root_path) behind the Serve proxy
    results = [_brave_result(entry, base_url, terms) for _, entry in scored[:count]]
    query = {"original": q, "spellcheck_off": True, "country": "us", "more_results_available": False}
    main = [{"type": "web", "index": i, "all": False} for i in range(len(results))]
    body: dict[str, Any] = {
        "query": query,
        "mixed": {"type": "mixed", "main": main, "top": [], "side": []},
        "type": "search",
    }
    if results:
        body["web"] = {"type": "search", "results": results, "family_friendly": True}
    return JSONResponse(body, headers=HEADERS)


@router.get("/pages/{name:path}")
async def page(name: str) -> Response:
    """A sample page or file; moved pages answer 301 with a relative Location."""
    if name in REDIRECTS:
        return RedirectResponse(REDIRECTS[name], status_code=301, headers=HEADERS)
    path = (PAGES_DIR / name).resolve()
    if not path.is_relative_to(PAGES_DIR.resolve()) or not path.is_file():
        return PlainTextResponse(
            f"SAMPLE DATA: no sample page /pages/{name}", status_code=404, headers=HEADERS
        )
    media_type, _ = mimetypes.guess_type(path.name)
    media_type = media_type or "application/octet-stream"
    if media_type.startswith("text/"):
        media_type += "; charset=utf-8"
    return FileResponse(path, media_type=media_type, headers=HEADERS)


@router.get("/robots.txt")
async def robots_txt() -> PlainTextResponse:
    """A ``robots.txt`` that disallows ``/pages/private/`` (it matters only at a host root)."""
    return PlainTextResponse((DATA_DIR / "robots.txt").read_text(encoding="utf-8"), headers=HEADERS)
