"""HTTP GET for untrusted URLs: every hop checked by :class:`UrlGuard`, robots.txt honoured, bounded.

Each request connects to the address the guard checked (Host header and TLS SNI keep the original
name), redirects are followed here, hop by hop, so each target is checked again, and the body is read as
a stream up to a byte cap under connect, read and total timeouts. No proxy from the environment is used:
a proxy would resolve names itself and undo the address pinning.
"""

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from protego import Protego

from mcp_servers.url_guard import ROBOTS_PATH, CheckedUrl, HostNotResolved, UrlGuard, UrlRefused

logger = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks parsers to read at least 500 KiB
ACCEPT = "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.8,*/*;q=0.5"

# Called with a response and the URL it answers (as written, not the pinned address) before the body
# is read; raises to refuse it (status, content type...).
ResponseCheck = Callable[[httpx.Response, httpx.URL], None]


class FetchError(Exception):
    """The fetch failed: timeout, connection error, too many redirects or a refused response."""


class RobotsDisallowed(FetchError):
    """The site's robots.txt does not allow this user agent to fetch the URL."""


@dataclass(frozen=True)
class FetchLimits:
    """Bounds of one fetch, redirects and robots.txt included."""

    max_bytes: int = 2_000_000
    max_redirects: int = 5
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    total_timeout_s: float = 30.0


@dataclass(frozen=True)
class FetchedResponse:
    """A fetched page: its final URL, status, headers and the body read up to the byte cap."""

    url: str  # the final URL, after redirects
    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool  # the body was longer than max_bytes and was cut there
    redirects: int  # redirects followed to get here
    trusted: bool = False  # the final URL is an operator's trusted host (its headers may be believed)

    @property
    def content_type(self) -> str | None:
        """The ``Content-Type`` header as sent, if any."""
        content_type: str | None = self.headers.get("content-type")
        return content_type


class SafeFetcher:
    """Fetches untrusted URLs; one instance per server process (it caches robots.txt per site)."""

    def __init__(
        self,
        guard: UrlGuard,
        *,
        user_agent: str,
        limits: FetchLimits | None = None,
        respect_robots_txt: bool = True,
        robots_ttl_s: float = 3600.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport`` replaces the network (tests observe which address a request goes to)."""
        self.guard = guard
        self.user_agent = user_agent
        self.limits = limits or FetchLimits()
        self._transport = transport
        self._headers = {"User-Agent": user_agent, "Accept": ACCEPT}
        self.robots = RobotsCache(self, ttl_s=robots_ttl_s) if respect_robots_txt else None

    async def fetch(self, url: str, *, check: ResponseCheck | None = None) -> FetchedResponse:
        """GET ``url``, following up to ``max_redirects`` redirects, each one checked.

        Raises:
            FetchError: timeout, connection error, too many redirects, a refused response or robots.txt.
            UrlRefused: a hop's URL is not allowed.
            HostNotResolved: a hop's host has no address.
        """
        try:
            async with asyncio.timeout(self.limits.total_timeout_s):
                return await self.get(url, check=check, check_robots=True, max_bytes=self.limits.max_bytes)
        except TimeoutError:
            raise FetchError(f"fetching {url} took longer than {self.limits.total_timeout_s:g} s") from None

    async def get(
        self, url: str, *, check: ResponseCheck | None, check_robots: bool, max_bytes: int
    ) -> FetchedResponse:
        """:meth:`fetch` without the total timeout, robots.txt optional (robots.txt itself is fetched so)."""
        current: str | httpx.URL = url
        async with self._client() as client:
            for hop in range(self.limits.max_redirects + 1):
                try:
                    checked = await self.guard.check(current)
                except UrlRefused as exc:
                    raise (UrlRefused(f"{exc} (reached by a redirect from {url})") if hop else exc) from None
                if check_robots and self.robots is not None:
                    refusal = await self.robots.refusal(checked)
                    if refusal:
                        raise RobotsDisallowed(refusal)
                client.cookies.clear()  # never carry a site's cookies to the next hop
                response = await self._send(client, checked)
                try:
                    location = response.headers.get("location")
                    if response.status_code in REDIRECT_STATUSES and location:
                        current = _join(checked.url, location)
                        logger.debug("redirect %s -> %s", checked.url, current)
                        continue
                    if check is not None:
                        check(response, checked.url)
                    body, truncated = await _read_capped(response, max_bytes)
                finally:
                    await response.aclose()
                return FetchedResponse(
                    str(checked.url),
                    response.status_code,
                    response.headers,
                    body,
                    truncated,
                    hop,
                    checked.trusted,
                )
        raise FetchError(f"too many redirects (more than {self.limits.max_redirects}) fetching {url}")

    def _client(self) -> httpx.AsyncClient:
        # No keep-alive: the pool is keyed by address, and a TLS connection made for one name (SNI)
        # must not be reused for another name on the same address.
        transport = self._transport or httpx.AsyncHTTPTransport(
            retries=0, limits=httpx.Limits(max_keepalive_connections=0)
        )
        timeout = httpx.Timeout(
            self.limits.read_timeout_s,
            connect=self.limits.connect_timeout_s,
            pool=self.limits.connect_timeout_s,
        )
        return httpx.AsyncClient(
            transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
        )

    async def _send(self, client: httpx.AsyncClient, checked: CheckedUrl) -> httpx.Response:
        request = checked.pinned_request(client, self._headers)
        try:
            return await client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise FetchError(f"{checked.url} did not answer in time ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            detail = str(exc) or type(exc).__name__
            raise FetchError(f"could not fetch {checked.url}: {detail}") from exc


def _join(base: httpx.URL, location: str) -> httpx.URL:
    try:
        return base.join(location)
    except httpx.InvalidURL as exc:
        raise UrlRefused(f"{base} redirects to an invalid URL {location!r}: {exc}") from exc


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    """The (decoded) body up to ``max_bytes``; True when more was sent. Stops reading at the cap."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            room = max_bytes - size
            if len(chunk) > room:
                chunks.append(chunk[:room])
                return b"".join(chunks), True
            chunks.append(chunk)
            size += len(chunk)
    except httpx.TimeoutException as exc:
        raise FetchError(f"{response.request.url} stopped sending data ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"reading {response.request.url} failed: {exc or type(exc).__name__}") from exc
    return b"".join(chunks), False


@dataclass(frozen=True)
class _Rules:
    expires: float
    parser: Protego | None  # None: the verdict below applies to every path
    allow_all: bool
    why: str  # why there is no parser, for messages


class RobotsCache:
    """robots.txt rules per origin (scheme, host, port), fetched through the same guard and cached.

    RFC 9309: a 4xx answer means no rules; a 5xx answer or an unreachable file means "disallow all"
    (retried after a minute). The sample upstream on Serve lives below a route prefix, so its host's
    ``/robots.txt`` is the Serve proxy's 404: allowed.
    """

    FAILURE_TTL_S = 60.0

    def __init__(self, fetcher: SafeFetcher, *, ttl_s: float, max_sites: int = 1024) -> None:
        self._fetcher = fetcher
        self._ttl_s = ttl_s
        self._max_sites = max_sites
        self._rules: OrderedDict[tuple[str, str, int], _Rules] = OrderedDict()

    async def refusal(self, checked: CheckedUrl) -> str | None:
        """Why robots.txt forbids fetching ``checked`` for our user agent, or None when it allows it."""
        rules = self._rules.get(checked.origin)
        if rules is None or rules.expires < time.monotonic():
            rules = await self._load(checked)
            self._rules[checked.origin] = rules
            while len(self._rules) > self._max_sites:
                self._rules.popitem(last=False)
        self._rules.move_to_end(checked.origin)
        site = f"{checked.url.scheme}://{checked.host_header}"
        if rules.parser is None:
            if rules.allow_all:
                return None
            return f"robots.txt of {site} could not be read ({rules.why}), so the site counts as disallowed"
        if rules.parser.can_fetch(str(checked.url), self._fetcher.user_agent):
            return None
        return f"robots.txt of {site} does not allow {self._fetcher.user_agent!r} to fetch {checked.url}"

    async def _load(self, checked: CheckedUrl) -> _Rules:
        url = f"{checked.url.scheme}://{checked.host_header}{ROBOTS_PATH}"
        now = time.monotonic()
        try:
            response = await self._fetcher.get(
                url, check=None, check_robots=False, max_bytes=ROBOTS_MAX_BYTES
            )
        except (FetchError, UrlRefused, HostNotResolved) as exc:
            logger.info("robots.txt unreachable, disallowing %s for now: %s", url, exc)
            return _Rules(now + self.FAILURE_TTL_S, None, False, str(exc))
        if 200 <= response.status < 300:
            text = response.body.decode("utf-8", errors="replace")
            return _Rules(now + self._ttl_s, Protego.parse(text), True, "parsed")
        if 400 <= response.status < 500:
            return _Rules(now + self._ttl_s, None, True, f"HTTP {response.status}: no rules")
        logger.info("robots.txt answered HTTP %s, disallowing %s for now", response.status, url)
        return _Rules(now + self.FAILURE_TTL_S, None, False, f"it answered HTTP {response.status}")
