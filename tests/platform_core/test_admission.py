"""Bounded admission: so many run, so many wait (for so long), the rest get 503 overloaded at once."""

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agent_runtime.a2a.app import A2AAgentArgs
from agent_runtime.chat.app import ChatAgentArgs
from mcp_servers.serving import MCPScalingArgs
from platform_core.admission import HEADROOM, Admission, AdmissionLimits


class Held:
    """An app whose /work requests all wait for ``release`` (a run in flight); /health answers at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0

    def app(self) -> Starlette:
        async def work(_: Request) -> JSONResponse:
            self.started += 1
            await self.release.wait()
            return JSONResponse({"ok": True})

        async def health(_: Request) -> JSONResponse:
            return JSONResponse({"ready": True})

        return Starlette(routes=[Route("/work", work, methods=["POST"]), Route("/health", health)])


@pytest.fixture
def held() -> Held:
    return Held()


def admitting(held: Held, **limits: float) -> Admission:
    values = {"max_running": 2, "max_waiting": 1, "wait_s": 10.0, "retry_after_s": 7} | limits
    return Admission(held.app(), AdmissionLimits.model_validate(values))


@pytest.fixture
async def client_for() -> AsyncIterator:
    clients: list[httpx.AsyncClient] = []

    def make(app: Admission) -> httpx.AsyncClient:
        clients.append(httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc"))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


async def until(condition, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


async def test_beyond_the_running_and_waiting_requests_the_next_gets_503_at_once(
    held: Held, client_for, caplog: pytest.LogCaptureFixture
) -> None:
    admission = admitting(held)
    client = client_for(admission)
    first = [asyncio.create_task(client.post("/work")) for _ in range(2)]
    await until(lambda: held.started == 2)
    waiting = asyncio.create_task(client.post("/work"))
    await until(lambda: admission.waiting == 1)

    with caplog.at_level(logging.WARNING, "platform_core.admission"):
        refused = await client.post("/work")
        assert (await client.post("/work")).status_code == 503
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "7"
    error = refused.json()["error"]
    assert error["code"] == "overloaded"
    assert "2 running, 1 waiting" in error["message"] and "retry after 7s" in error["message"]
    assert admission.refused == 2
    # The replica's log says it is refusing, once per minute at most (not once per request).
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith("overloaded: this service is at capacity")

    # A full replica still answers its health probe.
    assert (await client.get("/health")).status_code == 200
    assert held.started == 2 and not waiting.done()

    held.release.set()
    answers = await asyncio.gather(*first, waiting)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert held.started == 3
    assert (admission.running, admission.waiting) == (0, 0)


async def test_a_request_that_waits_too_long_gets_503(held: Held, client_for) -> None:
    admission = admitting(held, max_running=1, wait_s=0.2)
    client = client_for(admission)
    running = asyncio.create_task(client.post("/work"))
    await until(lambda: held.started == 1)

    late = await client.post("/work")
    assert late.status_code == 503 and late.json()["error"]["code"] == "overloaded"
    assert "no free slot within 0.2s" in late.json()["error"]["message"]
    assert admission.waiting == 0 and held.started == 1

    held.release.set()
    assert (await running).status_code == 200


async def test_a_waiting_client_that_leaves_frees_its_place(held: Held, client_for) -> None:
    admission = admitting(held, max_running=1, max_waiting=1)
    client = client_for(admission)
    running = asyncio.create_task(client.post("/work"))
    await until(lambda: held.started == 1)
    gone = asyncio.create_task(client.post("/work"))
    await until(lambda: admission.waiting == 1)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert admission.waiting == 0

    # Its place in line is free again: the next request waits (instead of a 503) and then runs.
    queued = asyncio.create_task(client.post("/work"))
    await until(lambda: admission.waiting == 1)
    held.release.set()
    assert [(await r).status_code for r in (running, queued)] == [200, 200]
    assert held.started == 2


@pytest.mark.parametrize("args_type", [ChatAgentArgs, A2AAgentArgs, MCPScalingArgs])
def test_serve_hands_a_replica_its_running_and_waiting_requests_and_headroom(args_type) -> None:
    args = args_type(max_ongoing_requests=10, max_queued_requests=4, queue_timeout_s=3, retry_after_s=2)
    assert args.deployment_options()["max_ongoing_requests"] == 10 + 4 + HEADROOM
    assert args.admission() == AdmissionLimits(max_running=10, max_waiting=4, wait_s=3, retry_after_s=2)
