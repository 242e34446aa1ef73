"""JSON-over-HTTP upstream calls whose failures become tool errors an LLM (and a user) can read.

Tool servers call public APIs that time out, go down, answer 5xx or send HTML error pages. Each such
failure surfaces as a :class:`UpstreamError` (a FastMCP ``ToolError``) that names the upstream and what
went wrong, never as a traceback.
"""

import asyncio
import json
import logging
from typing import Any

import httpx
from mcp.server.fastmcp.exceptions import ToolError
from pydantic import Field

from platform_core.settings import get_settings
from platform_core.telemetry import TRACE_HOOKS

logger = logging.getLogger(__name__)

# An upstream that serves recorded or sample data says so in this header; tools pass it on so answers
# built from such data can say they are (the bundled sample upstream sets it on every response).
DATA_NOTICE_HEADER = "X-Data-Notice"

RETRY_STATUSES = frozenset({500, 502, 503, 504})

# The largest answer read from an upstream API (a forecast is tens of KiB): a broken or hostile upstream
# cannot fill a replica's memory.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
# An answer must be complete within this many read timeouts: one that trickles a byte at a time passes
# every read timeout and would otherwise hold the tool call for ever.
TOTAL_TIMEOUT_READS = 3
_ENCODING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class UpstreamError(ToolError):
    """An upstream call failed; ``status`` is the HTTP status when the upstream answered at all."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UpstreamReply:
    """A decoded upstream answer plus the data notice, if the upstream sent one."""

    def __init__(self, data: Any, notice: str | None) -> None:
        self.data = data
        self.notice = notice


def upstream_base_url(configured: str | None, *, public: str, sample_path: str) -> str:
    """An upstream API's base URL: the configured one, else the public API or, offline, the sample.

    Offline (``OFFLINE=1``) an unset URL is the route at which the bundled sample upstream server
    imitates the API, so the same tool code runs without the internet.
    """
    if configured:
        return configured
    settings = get_settings()
    return settings.sample_upstream_url + sample_path if settings.offline else public


def base_url_field(api: str, public: str) -> Any:
    """A builder-args field for an upstream API's base URL; unset, :func:`upstream_base_url` decides."""
    return Field(default=None, description=f"{api} base URL; default {public} (offline: sample upstream).")


def new_client(*, timeout_s: float, user_agent: str, accept: str = "application/json") -> httpx.AsyncClient:
    """The HTTP client one replica shares between tool calls (connection pooling, one timeout)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        headers={"User-Agent": user_agent, "Accept": accept},
        follow_redirects=True,
        event_hooks=TRACE_HOOKS,  # the tool call's trace goes on to the upstream API
    )


class JSONUpstream:
    """One upstream API: a display name for messages, a base URL, and the shared client."""

    def __init__(
        self,
        name: str,
        base_url: str,
        client: httpx.AsyncClient,
        *,
        retries: int = 1,
        headers: dict[str, str] | None = None,
        max_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.retries = retries
        self.headers = headers or {}
        self.max_bytes = max_bytes
        self.total_timeout_s = (client.timeout.read or 10.0) * TOTAL_TIMEOUT_READS

    def url(self, path: str) -> str:
        """``path`` below the base URL; absolute URLs (links an upstream returned) are kept."""
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> UpstreamReply:
        """GET ``path`` (relative to the base URL, or absolute) and decode JSON, retrying 5xx once."""
        url = self.url(path)
        for attempt in range(self.retries + 1):
            try:
                response = await self._get(url, params)
            except TimeoutError as exc:
                raise UpstreamError(
                    f"{self.name} did not finish answering within {self.total_timeout_s:g} s ({url})."
                ) from exc
            except httpx.TimeoutException as exc:
                timeout = self.client.timeout.read
                within = f"within {timeout:g} s" if timeout else "in time"
                raise UpstreamError(f"{self.name} did not answer {within} ({url}).") from exc
            except httpx.HTTPError as exc:
                if attempt < self.retries:
                    continue
                raise UpstreamError(
                    f"Could not reach {self.name} at {self.base_url}: {type(exc).__name__}: {exc}".rstrip(
                        ": "
                    )
                ) from exc
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                logger.info("%s answered %s for %s, retrying", self.name, response.status_code, url)
                continue
            return self._decode(response)
        raise AssertionError("unreachable")  # the loop always returns or raises

    async def _get(self, url: str, params: dict[str, Any] | None) -> httpx.Response:
        """The whole answer, read within the total timeout and up to ``max_bytes``."""
        async with asyncio.timeout(self.total_timeout_s):
            async with self.client.stream("GET", url, params=params, headers=self.headers) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > self.max_bytes:
                        where = response.request.url.copy_with(query=None)
                        raise UpstreamError(
                            f"{self.name} sent an answer over {self.max_bytes} bytes for {where}; not read."
                        )
        # The body is decoded already: the copy must not claim an encoding or the encoded length.
        headers = [(k, v) for k, v in response.headers.multi_items() if k not in _ENCODING_HEADERS]
        return httpx.Response(
            response.status_code, headers=headers, content=bytes(body), request=response.request
        )

    def _decode(self, response: httpx.Response) -> UpstreamReply:
        where = response.request.url.copy_with(query=None)
        if response.status_code >= 400:
            raise UpstreamError(
                f"{self.name} answered HTTP {response.status_code} for {where}: {_error_detail(response)}",
                status=response.status_code,
            )
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UpstreamError(
                f"{self.name} sent a response that is not valid JSON for {where} "
                f"(content-type {response.headers.get('content-type', 'unknown')})."
            ) from exc
        return UpstreamReply(data, response.headers.get(DATA_NOTICE_HEADER))


def _error_detail(response: httpx.Response, limit: int = 300) -> str:
    """The most useful human-readable part of an error body (problem+json, Open-Meteo, or text)."""
    try:
        body = response.json()
    except ValueError:
        text = " ".join(response.text.split())
        return text[:limit] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("detail", "reason", "title", "message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:limit]
    return json.dumps(body)[:limit]
