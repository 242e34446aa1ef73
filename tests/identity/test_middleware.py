"""``RequireScope`` in front of a small Starlette app standing for ``/llm`` (JSON and streamed answers
with ``usage``), over httpx's ASGI transport on a SQLite identity: 401/403/429 in OpenAI's error shape,
the caller handed to the route, and the tokens each answer reports counted once."""

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from identity.gate import ANONYMOUS, AuthGate
from identity.middleware import (
    MAX_JSON_BODY_BYTES,
    RequireScope,
    caller_of,
    delegation_of,
    openai_error,
    relative_path,
)
from identity.service import Caller, IdentityService
from tests.support.identity import FakeClock, service, unique

USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def _chunk(content: str, usage: dict[str, int] | None = None) -> bytes:
    body = {"object": "chat.completion.chunk", "choices": [{"delta": {"content": content}}], "usage": usage}
    return f"data: {json.dumps(body)}\n\n".encode()


class Upstream:
    """The routes behind the door; each request's caller (as the route sees it) is kept."""

    def __init__(self) -> None:
        self.callers: list[Caller | None] = []
        self.delegations: list[str | None] = []
        self.authorizations: list[str | None] = []
        self.bodies: list[bytes] = []

    def _seen(self, request: Request) -> None:
        self.callers.append(caller_of(request.scope))
        self.delegations.append(delegation_of(request.scope))
        self.authorizations.append(request.headers.get("authorization"))

    async def echo(self, request: Request) -> Response:
        self._seen(request)
        self.bodies.append(await request.body())
        return JSONResponse({"usage": USAGE})

    async def health(self, request: Request) -> Response:
        self._seen(request)
        return JSONResponse({"ready": True})

    async def chat(self, request: Request) -> Response:
        self._seen(request)
        return JSONResponse({"object": "chat.completion", "choices": [], "usage": USAGE})

    async def stream(self, request: Request) -> Response:
        self._seen(request)

        async def chunks() -> AsyncIterator[bytes]:
            yield _chunk("Hel")
            yield _chunk("lo")
            final = _chunk("", {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25})
            yield final[:17]  # a data line split across two body messages
            yield final[17:]
            yield b"data: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    async def failed(self, request: Request) -> Response:
        self._seen(request)
        return JSONResponse({"error": {"message": "upstream failed"}, "usage": USAGE}, status_code=502)

    async def bad_request(self, request: Request) -> Response:
        return JSONResponse({"usage": USAGE, "error": "bad"}, status_code=400)

    async def no_usage(self, request: Request) -> Response:
        return JSONResponse({"data": [{"id": "model"}]})

    async def huge(self, request: Request) -> Response:
        padding = "x" * MAX_JSON_BODY_BYTES
        return JSONResponse({"usage": USAGE, "padding": padding})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/health", self.health),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/stream", self.stream, methods=["POST"]),
                Route("/v1/failed", self.failed, methods=["POST"]),
                Route("/v1/bad", self.bad_request, methods=["POST"]),
                Route("/v1/models", self.no_usage),
                Route("/v1/huge", self.huge, methods=["POST"]),
                Route("/v1/echo", self.echo, methods=["POST"]),
            ]
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def identity(tmp_path: Path, clock: FakeClock) -> AsyncIterator[IdentityService]:
    async with service(f"sqlite:///{tmp_path / 'agents.db'}", clock) as opened:
        yield opened


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


def _client(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def client(identity: IdentityService, upstream: Upstream) -> AsyncIterator[httpx.AsyncClient]:
    gate = AuthGate(enabled=True, identity=identity)
    app = RequireScope(upstream.app(), gate=gate, scope="llm", meter_tokens=True, render=openai_error)
    async with _client(app) as http:
        yield http


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_openai_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["type"] == code and error["param"] is None
    assert error["message"]


async def _tokens(identity: IdentityService, principal_id: str) -> list[tuple[int, int]]:
    return [(row.prompt_tokens, row.completion_tokens) for row in await identity.usage.read(principal_id)]


# --- the door -----------------------------------------------------------------------------------------


async def test_the_credential_is_spent_at_the_door(
    identity: IdentityService, client: httpx.AsyncClient, upstream: Upstream
) -> None:
    # The app behind never sees it, so it cannot pass it on (the upstream LLM proxy forwards the
    # Authorization of a caller when it has no key of its own).
    _, token = await identity.keys.create(unique("door"), ["llm"])
    assert (await client.post("/v1/echo", json={}, headers=_bearer(token))).status_code == 200
    assert upstream.authorizations == [None]


async def test_a_streamed_request_is_made_to_report_its_usage(
    identity: IdentityService, client: httpx.AsyncClient, upstream: Upstream
) -> None:
    _, token = await identity.keys.create(unique("streamer"), ["llm"])
    sent = [
        {"model": "m", "stream": True},
        {"model": "m", "stream": True, "stream_options": {"include_usage": False, "other": 1}},
        {"model": "m"},  # not streamed: the answer has its usage anyway, the body passes as it is
    ]
    for body in sent:
        response = await client.post("/v1/echo", content=json.dumps(body), headers=_bearer(token))
        assert response.status_code == 200
    seen = [json.loads(body) for body in upstream.bodies]
    assert seen[0]["stream_options"] == {"include_usage": True}
    assert seen[1]["stream_options"] == {"include_usage": True, "other": 1}
    assert seen[2] == {"model": "m"} and upstream.bodies[2] == json.dumps(sent[2]).encode()


async def test_health_is_public(client: httpx.AsyncClient, upstream: Upstream) -> None:
    response = await client.get("/health")
    assert response.status_code == 200 and response.json() == {"ready": True}
    assert upstream.callers == [None]


async def test_no_or_a_bad_credential_is_401_with_a_bearer_challenge(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    response = await client.post("/v1/chat/completions", json={})
    _assert_openai_error(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == 'Bearer realm="platform"'
    assert response.headers["x-should-retry"] == "false"
    for headers in (_bearer("rap_nope"), _bearer("rapd_forged.token"), {"Authorization": "Basic abc"}):
        response = await client.post("/v1/chat/completions", json={}, headers=headers)
        _assert_openai_error(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"].startswith("Bearer ")
    assert (await client.get("/v1/models")).status_code == 401  # every path but the public ones
    assert upstream.callers == []  # nothing reached the routes


async def test_a_key_without_the_scope_is_403(
    identity: IdentityService, client: httpx.AsyncClient, upstream: Upstream
) -> None:
    _, token = await identity.keys.create(unique("alice"), ["agent:travel", "mcp:*"])
    response = await client.post("/v1/chat/completions", json={}, headers=_bearer(token))
    _assert_openai_error(response, 403, "forbidden")
    assert "'llm'" in response.json()["error"]["message"]
    assert response.headers["x-should-retry"] == "false"
    assert upstream.callers == []


async def test_a_good_key_reaches_the_route_with_its_caller(
    identity: IdentityService, client: httpx.AsyncClient, upstream: Upstream
) -> None:
    key, token = await identity.keys.create(unique("bob"), ["llm"])
    response = await client.post("/v1/chat/completions", json={}, headers=_bearer(token))
    assert response.status_code == 200 and response.json()["usage"] == USAGE
    assert upstream.callers == [Caller(principal=key.principal, key=key)]
    assert upstream.delegations == [None]  # no delegate_ttl_s: none minted


async def test_a_delegated_hop_reaches_the_route_with_the_end_user(
    identity: IdentityService, client: httpx.AsyncClient, upstream: Upstream
) -> None:
    key, token = await identity.keys.create(unique("carol"), ["agent:travel"])  # no llm scope of its own
    caller = await identity.identify({"authorization": f"Bearer {token}"}, "agent:travel")
    delegation = await identity.delegate(caller, 60)
    response = await client.post("/v1/chat/completions", json={}, headers=_bearer(delegation))
    assert response.status_code == 200
    seen = upstream.callers[-1]
    assert seen is not None and seen.principal.id == key.principal_id and seen.principal.delegated
    assert seen.key == key and seen.delegation == delegation
    assert await _tokens(identity, key.principal_id) == [(11, 7)]  # the user's usage, via the hop


async def test_delegate_ttl_leaves_the_requests_delegation_for_the_route(
    identity: IdentityService, upstream: Upstream
) -> None:
    gate = AuthGate(enabled=True, identity=identity)
    app = RequireScope(upstream.app(), gate=gate, scope="llm", delegate_ttl_s=60)
    key, token = await identity.keys.create(unique("dora"), ["llm"])
    async with _client(app) as http:
        assert (await http.post("/v1/chat/completions", json={}, headers=_bearer(token))).status_code == 200
        minted = upstream.delegations[-1]
        assert minted is not None and minted.startswith("rapd_")
        hop = await identity.identify({"authorization": f"Bearer {minted}"}, "mcp:weather")
        assert hop.principal.id == key.principal_id and hop.key == key
        # a delegated request passes its own delegation on
        assert (await http.post("/v1/chat/completions", json={}, headers=_bearer(minted))).status_code == 200
        assert upstream.delegations[-1] == minted
    assert await _tokens(identity, key.principal_id) == []  # meter_tokens is off here


# --- metering -----------------------------------------------------------------------------------------


async def test_the_tokens_of_a_json_answer_are_counted(
    identity: IdentityService, client: httpx.AsyncClient
) -> None:
    key, token = await identity.keys.create(unique("erin"), ["llm"], token_budget=1000)
    for _ in range(2):
        response = await client.post("/v1/chat/completions", json={}, headers=_bearer(token))
        assert response.status_code == 200
    assert await _tokens(identity, key.principal_id) == [(22, 14)]
    assert (await identity.limits.tokens_used(key))[0] == 36


async def test_the_tokens_of_a_streamed_answer_are_counted_from_its_usage_chunk(
    identity: IdentityService, client: httpx.AsyncClient
) -> None:
    key, token = await identity.keys.create(unique("fay"), ["llm"], token_budget=1000)
    async with client.stream("POST", "/v1/stream", json={}, headers=_bearer(token)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line async for line in response.aiter_lines() if line.startswith("data:")]
    assert len(lines) == 4 and lines[-1] == "data: [DONE]"
    assert json.loads(lines[2].removeprefix("data: "))["usage"]["prompt_tokens"] == 20  # sent unchanged
    assert await _tokens(identity, key.principal_id) == [(20, 5)]
    assert (await identity.limits.tokens_used(key))[0] == 25


async def test_an_answer_without_usage_counts_nothing(
    identity: IdentityService, client: httpx.AsyncClient
) -> None:
    key, token = await identity.keys.create(unique("gil"), ["llm"], token_budget=1000)
    assert (await client.get("/v1/models", headers=_bearer(token))).status_code == 200
    assert await _tokens(identity, key.principal_id) == []
    assert (await identity.limits.tokens_used(key))[0] == 0


async def test_an_error_answer_with_usage_is_not_counted(
    identity: IdentityService, client: httpx.AsyncClient
) -> None:
    key, token = await identity.keys.create(unique("hank"), ["llm"], token_budget=1000)
    assert (await client.post("/v1/failed", json={}, headers=_bearer(token))).status_code == 502
    assert (await client.post("/v1/bad", json={}, headers=_bearer(token))).status_code == 400
    assert await _tokens(identity, key.principal_id) == []
    assert (await identity.limits.tokens_used(key))[0] == 0


async def test_a_json_answer_too_large_to_hold_is_passed_on_but_not_counted(
    identity: IdentityService, client: httpx.AsyncClient
) -> None:
    key, token = await identity.keys.create(unique("ike"), ["llm"], token_budget=1000)
    response = await client.post("/v1/huge", json={}, headers=_bearer(token))
    assert response.status_code == 200 and len(response.content) > MAX_JSON_BODY_BYTES
    assert await _tokens(identity, key.principal_id) == []


async def test_a_spent_budget_is_429_the_sdk_must_not_retry(
    identity: IdentityService, client: httpx.AsyncClient, upstream: Upstream, clock: FakeClock
) -> None:
    key, token = await identity.keys.create(unique("jan"), ["llm"], token_budget=30)
    assert (await client.post("/v1/chat/completions", json={}, headers=_bearer(token))).status_code == 200
    assert (await client.post("/v1/stream", json={}, headers=_bearer(token))).status_code == 200
    assert (await identity.limits.tokens_used(key))[0] == 43  # the last answer overshoots; then refused
    clock.now += 3600
    response = await client.post("/v1/chat/completions", json={}, headers=_bearer(token))
    _assert_openai_error(response, 429, "budget_exceeded")
    assert response.headers["x-should-retry"] == "false"
    assert response.headers["retry-after"] == str(86_400 - 3600)
    assert len(upstream.callers) == 2
    assert (await client.get("/health")).status_code == 200


async def test_over_the_rate_is_429_the_sdk_may_retry(
    identity: IdentityService, client: httpx.AsyncClient
) -> None:
    _, token = await identity.keys.create(unique("kay"), ["llm"], rpm=1)
    assert (await client.post("/v1/chat/completions", json={}, headers=_bearer(token))).status_code == 200
    response = await client.post("/v1/chat/completions", json={}, headers=_bearer(token))
    _assert_openai_error(response, 429, "rate_limited")
    assert "x-should-retry" not in response.headers and int(response.headers["retry-after"]) >= 1


async def test_the_platforms_default_error_shape(identity: IdentityService, upstream: Upstream) -> None:
    gate = AuthGate(enabled=True, identity=identity)
    async with _client(RequireScope(upstream.app(), gate=gate, scope="mcp:weather")) as http:
        response = await http.post("/v1/chat/completions", json={})
    assert response.status_code == 401
    assert set(response.json()) == {"error"} and set(response.json()["error"]) == {"code", "message"}
    assert response.json()["error"]["code"] == "unauthenticated"
    assert "x-should-retry" not in response.headers


async def test_with_auth_off_everything_passes_and_nothing_is_counted(
    identity: IdentityService, upstream: Upstream
) -> None:
    gate = AuthGate(enabled=False, identity=identity)
    app = RequireScope(upstream.app(), gate=gate, scope="llm", meter_tokens=True, render=openai_error)
    async with _client(app) as http:
        assert (await http.post("/v1/chat/completions", json={})).status_code == 200
        assert (await http.post("/v1/stream", json={}, headers=_bearer("rap_anything"))).status_code == 200
        assert (await http.get("/health")).status_code == 200
    assert upstream.callers == [ANONYMOUS, ANONYMOUS, None]
    assert not gate.enabled
    assert await identity.usage.read() == []


async def test_non_http_scopes_pass_through(identity: IdentityService) -> None:
    reached: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["type"])

    gate = AuthGate(enabled=True, identity=identity)
    app = RequireScope(inner, gate=gate, scope="llm")

    async def nothing() -> Message:
        return {}

    async def ignore(message: Message) -> None:
        return None

    await app({"type": "lifespan"}, nothing, ignore)
    await app({"type": "websocket", "path": "/ws", "headers": []}, nothing, ignore)
    assert reached == ["lifespan", "websocket"]


# --- paths --------------------------------------------------------------------------------------------


def test_relative_path_strips_the_route_prefix() -> None:
    assert relative_path({"path": "/llm/health", "root_path": "/llm"}) == "/health"
    assert relative_path({"path": "/llm", "root_path": "/llm"}) == "/"
    assert relative_path({"path": "/health", "root_path": ""}) == "/health"
    assert relative_path({"path": "/health"}) == "/health"
    assert relative_path({"path": "/v1/models", "root_path": "/llm"}) == "/v1/models"  # already relative
    assert relative_path({}) == ""


async def test_health_under_a_route_prefix_is_public(identity: IdentityService, upstream: Upstream) -> None:
    gate = AuthGate(enabled=True, identity=identity)
    app = RequireScope(upstream.app(), gate=gate, scope="llm")
    transport = httpx.ASGITransport(app=app, root_path="/llm")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.get("/llm/health")).status_code == 200
        assert (await http.get("/llm/v1/models")).status_code == 401
