"""Upstream probes of a tool server's /health: what counts as down, and how rarely it probes."""

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mcp_servers.upstream_health import UpstreamProbe
from tests.support.servers import closed_port_url, serve_in_thread


class Upstream:
    """An upstream whose answer the test sets (``status``; ``hang`` never answers); counts requests."""

    def __init__(self) -> None:
        self.status = 404  # an API's base URL often has no page: still up
        self.hang = False
        self.requests = 0
        self.app = Starlette(routes=[Route("/{path:path}", self.answer)])

    async def answer(self, request: Request) -> PlainTextResponse:
        self.requests += 1
        if self.hang:
            await asyncio.sleep(3)  # far beyond the probe's timeout
        return PlainTextResponse("x", status_code=self.status)


async def test_only_refusals_timeouts_and_5xx_are_down_and_each_names_its_reason() -> None:
    ok, failing, hanging = Upstream(), Upstream(), Upstream()
    failing.status, hanging.hang = 502, True
    with serve_in_thread(ok.app) as ok_url, serve_in_thread(failing.app) as bad_url:
        with serve_in_thread(hanging.app) as slow_url:
            refused = closed_port_url()
            probe = UpstreamProbe(
                {"ok": ok_url + "/v1", "failing": bad_url, "hanging": slow_url, "refused": refused},
                timeout_s=0.5,
            )
            down = await probe.down()
    assert set(down) == {"failing", "hanging", "refused"}
    assert down["failing"] == f"GET {bad_url} answered 502"
    assert down["hanging"] == f"GET {slow_url}: no answer within 0.5 s"
    assert down["refused"].startswith(f"GET {refused}: ConnectError")


async def test_probes_are_cached_for_the_ttl_and_shared_by_concurrent_checks() -> None:
    upstream = Upstream()
    with serve_in_thread(upstream.app) as url:
        probe = UpstreamProbe({"api": url}, ttl_s=3600)
        results = await asyncio.gather(*(probe.down() for _ in range(5)))
        assert results == [{}] * 5 and upstream.requests == 1
        upstream.status = 503  # down now, but the last probe is still fresh
        assert await probe.down() == {} and upstream.requests == 1

        probe.ttl_s = 0  # due again: it probes and sees the failure, then the recovery
        assert await probe.down() == {"api": f"GET {url} answered 503"}
        upstream.status = 200
        assert await probe.down() == {} and upstream.requests == 3


async def test_a_server_without_upstreams_is_never_down() -> None:
    assert await UpstreamProbe({}).down() == {}
