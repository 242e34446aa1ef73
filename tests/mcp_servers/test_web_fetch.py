"""SafeFetcher against real local servers: redirects re-checked, pinned addresses, caps, robots.txt."""

import asyncio
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from mcp_servers.url_guard import UrlGuard, UrlRefused
from mcp_servers.web_content import NotTextContent, PageError, check_page_response
from mcp_servers.web_fetch import FetchError, FetchLimits, RobotsDisallowed, SafeFetcher
from tests.support.servers import serve_in_thread
from tests.support.web import hostile_site

PUBLIC = "93.184.216.34"
UA = "TestFetcher/1.0"


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[str, Starlette]]:
    app = hostile_site()
    with serve_in_thread(app) as url:
        yield url, app


def fetcher_for(url: str, **kwargs) -> SafeFetcher:
    """A fetcher that trusts only the test server (loopback) and resolves a few test names."""

    async def resolver(host: str, port: int) -> list[str]:
        return {"intranet.test": ["10.1.1.1"], "pinned.test": ["127.0.0.1"]}[host]

    trusted = [urlsplit(url).netloc, *kwargs.pop("trusted", [])]
    limits = kwargs.pop("limits", FetchLimits(max_redirects=3, read_timeout_s=2, total_timeout_s=10))
    return SafeFetcher(
        UrlGuard(resolver=resolver, trusted_hosts=trusted), user_agent=UA, limits=limits, **kwargs
    )


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://[::ffff:169.254.169.254]/", "169.254.169.254"),
        ("http://intranet.test/", "resolves to 10.1.1.1"),
        ("http://2130706433/", "127.0.0.1"),
        ("file:///etc/passwd", "only http and https"),
        (f"http://{PUBLIC}:6379/", "port 6379 is not an allowed port"),  # a public host, a service port
        ("https://pinned.test:8443/", "port 8443"),
    ],
)
@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirect_hops_to_forbidden_targets_are_refused(
    site: tuple[str, Starlette], target: str, why: str, status: int
) -> None:
    url, _ = site
    start = f"{url}/redirect?status={status}&to={target}"
    with pytest.raises(UrlRefused) as refused:
        await fetcher_for(url).fetch(start)
    assert why in str(refused.value)
    assert "reached by a redirect from" in str(refused.value)


async def test_redirects_within_allowed_targets_are_followed(site: tuple[str, Starlette]) -> None:
    url, _ = site
    page = await fetcher_for(url).fetch(f"{url}/redirect?to=/echo")
    assert page.status == 200 and page.redirects == 1
    assert page.url == f"{url}/echo"


async def test_redirect_cap(site: tuple[str, Starlette]) -> None:
    url, _ = site
    with pytest.raises(FetchError, match=r"too many redirects \(more than 3\)"):
        await fetcher_for(url).fetch(f"{url}/loop/0")


async def test_connection_goes_to_the_resolved_address_with_the_original_host_header(
    site: tuple[str, Starlette],
) -> None:
    # 'pinned.test' exists only in the injected resolver: reaching the server at all proves the socket
    # went to the checked address, and the server still sees the name the URL gave.
    url, _ = site
    port = urlsplit(url).port
    page = await fetcher_for(url, trusted=[f"pinned.test:{port}"]).fetch(f"http://pinned.test:{port}/echo")
    assert page.body == f"host=pinned.test:{port}".encode()
    assert page.trusted


class RecordingTransport(httpx.AsyncBaseTransport):
    """Stands in for the network: records where each request would have connected."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/robots.txt":
            return httpx.Response(404)
        return httpx.Response(200, html="<p>public page</p>")


def rebinding_resolver(calls: list[str]):
    """First answer public, every later answer private: a DNS rebinding attack."""

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return [PUBLIC] if len(calls) == 1 else ["10.0.0.1"]

    return resolve


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_dns_rebinding_cannot_move_the_connection(scheme: str) -> None:
    calls: list[str] = []
    transport = RecordingTransport()
    fetcher = SafeFetcher(
        UrlGuard(resolver=rebinding_resolver(calls)),
        user_agent=UA,
        respect_robots_txt=False,
        transport=transport,
    )
    page = await fetcher.fetch(f"{scheme}://rebind.example/page")
    assert page.status == 200 and not page.trusted
    assert calls == ["rebind.example"]  # one lookup, checked; nothing resolves the name again
    (request,) = transport.requests
    assert request.url.host == PUBLIC  # the connection target is the checked address
    assert request.headers["host"] == "rebind.example"
    assert request.extensions.get("sni_hostname") == ("rebind.example" if scheme == "https" else None)


async def test_every_lookup_is_checked_including_robots_txt() -> None:
    calls: list[str] = []
    transport = RecordingTransport()
    fetcher = SafeFetcher(UrlGuard(resolver=rebinding_resolver(calls)), user_agent=UA, transport=transport)
    with pytest.raises(RobotsDisallowed, match="resolves to 10.0.0.1, a private address"):
        await fetcher.fetch("http://rebind.example/page")
    assert len(calls) == 2  # the page, then robots.txt: the second answer was refused
    assert transport.requests == []


async def test_body_is_streamed_and_capped(site: tuple[str, Starlette]) -> None:
    url, app = site
    fetcher = fetcher_for(url, limits=FetchLimits(max_bytes=100_000, total_timeout_s=10))
    page = await fetcher.fetch(f"{url}/huge")  # returns at the cap (else the 10 s total limit fails it)
    assert page.truncated and len(page.body) == 100_000
    sent = -1
    async with asyncio.timeout(30):  # until the server has seen the client go and stopped sending
        while sent != app.state.sent["huge"]:
            sent = app.state.sent["huge"]
            await asyncio.sleep(0.2)
    assert sent < 10_000_000  # the server stopped long before its ~6 GB


@pytest.mark.parametrize(
    ("path", "limits", "error"),
    [
        ("/slow", FetchLimits(read_timeout_s=0.5, total_timeout_s=10), "did not answer in time"),
        ("/trickle", FetchLimits(read_timeout_s=5, total_timeout_s=1), "took longer than 1 s"),  # total
    ],
    ids=["read_timeout", "total_timeout_bounds_slow_trickles"],
)
async def test_timeouts(site: tuple[str, Starlette], path: str, limits: FetchLimits, error: str) -> None:
    url, _ = site
    fetcher = fetcher_for(url, limits=limits)
    with pytest.raises(FetchError, match=error):  # the message names which limit ended it
        await fetcher.fetch(url + path)


async def test_connection_refused_is_a_clear_error(site: tuple[str, Starlette]) -> None:
    url, _ = site
    with serve_in_thread(Starlette()) as closed_url:
        pass  # the port is free again once the server stopped
    with pytest.raises(FetchError, match="could not fetch"):
        await fetcher_for(url, trusted=[urlsplit(closed_url).netloc]).fetch(f"{closed_url}/")


async def test_response_checks_see_the_url_as_written(site: tuple[str, Starlette]) -> None:
    url, _ = site
    port = urlsplit(url).port
    fetcher = fetcher_for(url, trusted=[f"pinned.test:{port}"])
    with pytest.raises(NotTextContent, match=rf"http://pinned.test:{port}/file.pdf is application/pdf"):
        await fetcher.fetch(f"http://pinned.test:{port}/file.pdf", check=check_page_response)
    with pytest.raises(PageError, match="answered HTTP 404 Not Found"):
        await fetcher.fetch(f"{url}/missing", check=check_page_response)


async def test_robots_txt_disallow_is_honoured_and_cached(site: tuple[str, Starlette]) -> None:
    url, _ = site
    fetcher = fetcher_for(url)
    with pytest.raises(RobotsDisallowed, match="does not allow 'TestFetcher/1.0'"):
        await fetcher.fetch(f"{url}/private/page")
    with pytest.raises(RobotsDisallowed):  # a redirect into a disallowed path is caught at the hop
        await fetcher.fetch(f"{url}/redirect?to=/private/page")
    assert (await fetcher.fetch(f"{url}/echo")).status == 200
    unpolite = fetcher_for(url, respect_robots_txt=False)
    assert (await unpolite.fetch(f"{url}/private/page")).body == b"<p>secret</p>"


@pytest.mark.parametrize(("robots_status", "allowed"), [(404, True), (403, True), (500, False), (503, False)])
async def test_robots_txt_status_conventions(robots_status: int, allowed: bool) -> None:
    hits: list[str] = []

    async def robots(_: Request) -> Response:
        hits.append("robots")
        return PlainTextResponse("nope", status_code=robots_status)

    async def page(_: Request) -> Response:
        return HTMLResponse("<p>hello</p>")

    app = Starlette(routes=[Route("/robots.txt", robots), Route("/page", page)])
    with serve_in_thread(app) as url:
        fetcher = fetcher_for(url)
        for _ in range(2):
            if allowed:
                assert (await fetcher.fetch(f"{url}/page")).body == b"<p>hello</p>"
            else:
                with pytest.raises(RobotsDisallowed, match=f"answered HTTP {robots_status}"):
                    await fetcher.fetch(f"{url}/page")
    assert hits == ["robots"]  # cached per site
