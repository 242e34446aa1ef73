"""Turn a fetched web response into text a model can read: text-only policy, decoding, markdown, paging."""

import re

import html2text
import httpx

# Non-``text/*`` media types that are still text worth returning.
TEXT_MEDIA_TYPES = frozenset(
    {
        "application/json",
        "application/ld+json",
        "application/xml",
        "application/xhtml+xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/javascript",
        "application/ecmascript",
        "application/x-javascript",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/x-sh",
        "application/sql",
        "application/graphql",
    }
)
HTML_MEDIA_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_CHARSET = re.compile(r"""charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)
_SNIFF_BYTES = 4096


class NotTextContent(ValueError):
    """The response is binary (image, PDF, archive...): fetch_url returns text only."""


def media_type(content_type: str | None) -> str:
    """``'text/html; charset=utf-8'`` -> ``'text/html'``; ``''`` when unknown."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_textual(media: str) -> bool:
    return media.startswith("text/") or media in TEXT_MEDIA_TYPES or media.endswith(("+xml", "+json"))


class PageError(ValueError):
    """The server answered with an error status."""


def check_page_response(response: httpx.Response, url: httpx.URL) -> None:
    """Refuse error statuses and binary content types before the body is downloaded."""
    if response.status_code >= 400:
        raise PageError(f"{url} answered HTTP {response.status_code} {response.reason_phrase}".rstrip())
    media = media_type(response.headers.get("content-type"))
    if media and not is_textual(media):
        raise NotTextContent(
            f"{url} is {media}, not a text page; fetch_url returns readable text only "
            "(images, PDFs, archives and other binary files are refused)"
        )


def looks_binary(body: bytes) -> bool:
    """Content without a declared type is binary if its start holds NUL bytes (as file(1) guesses)."""
    return b"\x00" in body[:_SNIFF_BYTES]


def decode(body: bytes, content_type: str | None) -> str:
    """Text of ``body``: the declared charset, a ``<meta charset>``, else UTF-8 (bad bytes replaced)."""
    declared = _CHARSET.search(content_type or "")
    meta = _META_CHARSET.search(body[:_SNIFF_BYTES])
    for charset in (declared.group(1) if declared else None, meta.group(1).decode() if meta else None):
        if charset:
            try:
                return body.decode(charset, errors="replace")
            except LookupError:
                continue
    return body.decode("utf-8", errors="replace")


def is_html(content_type: str | None, text: str) -> bool:
    media = media_type(content_type)
    if media:
        return media in HTML_MEDIA_TYPES
    return text.lstrip()[:15].lower().startswith(("<!doctype html", "<html"))


def html_to_markdown(html: str, base_url: str) -> str:
    """Readable markdown with absolute links (relative ones resolved against ``base_url``)."""
    converter = html2text.HTML2Text(baseurl=base_url)
    converter.body_width = 0  # no hard wrapping: it wastes characters of the page budget
    converter.unicode_snob = True
    converter.ignore_images = False
    converter.single_line_break = False
    return re.sub(r"\n{3,}", "\n\n", converter.handle(html)).strip()


def page_of(content: str, start_index: int, max_length: int) -> str:
    """``content[start_index:start_index + max_length]`` plus a note telling how to get the rest."""
    total = len(content)
    if total == 0:
        return "(the page has no readable text)"
    if start_index >= total:
        raise ValueError(f"start_index {start_index} is past the end of the content ({total} characters)")
    end = min(start_index + max_length, total)
    chunk = content[start_index:end]
    if end < total:
        chunk += (
            f"\n\n[Content truncated: characters {start_index}-{end} of {total} shown. "
            f"Call fetch_url again with start_index={end} to read more.]"
        )
    return chunk
