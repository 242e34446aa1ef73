"""The apps' helpers in-process: a tiny FastAPI app guarded by ``require_scope``, over httpx's ASGI
transport (no Ray), on both backends."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from starlette.datastructures import Headers

from identity.asgi import authenticate_request, install_identity, require_scope
from identity.errors import Forbidden, Unauthenticated
from identity.scopes import Principal
from identity.service import IdentityService, bearer_token
from platform_core.api_errors import install_api_error_handlers
from platform_core.errors import ConfigurationError
from tests.support.identity import FakeClock, service, unique
from tests.support.persistence import database_fixtures

postgres_url, database_url = database_fixtures()


def _app(identity: IdentityService) -> FastAPI:
    app = FastAPI()
    install_api_error_handlers(app)
    install_identity(app, identity)

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/chat")
    async def chat(principal: Principal = Depends(require_scope("agent:weather"))) -> dict[str, Any]:
        return {"id": principal.id, "name": principal.name}

    @app.get("/threads")
    async def threads(
        request: Request, principal: Principal = Depends(require_scope("agent:weather", check_budget=False))
    ) -> dict[str, str]:
        assert request.state.principal is principal
        return {"name": principal.name}

    @app.get("/by-hand")
    async def by_hand(request: Request) -> dict[str, str]:
        return {"name": (await authenticate_request(request)).name}

    return app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def identity(database_url: str, clock: FakeClock) -> AsyncIterator[IdentityService]:
    async with service(database_url, clock) as opened:
        yield opened


@pytest.fixture
async def client(identity: IdentityService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(identity))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert set(response.json()) == {"error"} and set(response.json()["error"]) == {"code", "message"}


async def test_a_key_with_the_scope_gets_its_principal(
    identity: IdentityService, client: httpx.AsyncClient
) -> None:
    key, token = await identity.keys.create(unique("alice"), ["agent:weather"])
    response = await client.post("/chat", headers=_bearer(token))
    assert response.status_code == 200 and response.json() == {"id": key.principal_id, "name": key.name}
    wildcard, token = await identity.keys.create(unique("ops"), ["agent:*"])
    assert (await client.post("/chat", headers=_bearer(token))).json()["name"] == wildcard.name
    assert (await client.get("/by-hand", headers=_bearer(token))).json()["name"] == wildcard.name
    assert (await client.get("/health")).status_code == 200  # an unguarded route stays open


async def test_no_or_a_bad_credential_is_401_with_a_bearer_challenge(
    identity: IdentityService, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    response = await client.post("/chat")
    _assert_error(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == 'Bearer realm="platform"'

    name = unique("bob")
    _, token = await identity.keys.create(name, ["agent:weather"], expires_in_s=30)
    secret = token.split("_", 2)[2]
    for headers in (
        {"Authorization": token},  # no scheme
        {"Authorization": f"Basic {token}"},
        {"Authorization": "Bearer "},
        _bearer("not-a-key"),
        _bearer(f"rap_{'0' * 16}_{secret}"),
    ):
        response = await client.post("/chat", headers=headers)
        _assert_error(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"].startswith("Bearer ")
        assert secret not in response.text

    clock.now += 30
    response = await client.post("/chat", headers=_bearer(token))
    _assert_error(response, 401, "unauthenticated")
    assert "expired" in response.json()["error"]["message"]


async def test_a_revoked_key_is_refused_once_the_cache_ttl_has_passed(
    identity: IdentityService, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    name = unique("carol")
    _, token = await identity.keys.create(name, ["agent:weather"])
    assert (await client.post("/chat", headers=_bearer(token))).status_code == 200
    await identity.keys.revoke(name)
    clock.now += identity.verifier.cache_ttl_s
    _assert_error(await client.post("/chat", headers=_bearer(token)), 401, "unauthenticated")


async def test_a_key_without_the_scope_is_403(identity: IdentityService, client: httpx.AsyncClient) -> None:
    for scopes in (["agent:travel"], ["llm", "mcp:*"]):
        _, token = await identity.keys.create(unique("dave"), scopes)
        response = await client.post("/chat", headers=_bearer(token))
        _assert_error(response, 403, "forbidden")
        assert "agent:weather" in response.json()["error"]["message"]


async def test_over_the_rate_is_429_with_retry_after(
    identity: IdentityService, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    _, token = await identity.keys.create(unique("erin"), ["agent:weather"], rpm=2)
    clock.now += 20
    assert [(await client.post("/chat", headers=_bearer(token))).status_code for _ in range(2)] == [200, 200]
    response = await client.post("/chat", headers=_bearer(token))
    _assert_error(response, 429, "rate_limited")
    assert response.headers["retry-after"] == "40"
    clock.now += 40
    assert (await client.post("/chat", headers=_bearer(token))).status_code == 200


async def test_a_spent_budget_is_429_except_where_the_route_needs_no_tokens(
    identity: IdentityService, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    key, token = await identity.keys.create(unique("frank"), ["agent:weather"], token_budget=100)
    await identity.limits.add_tokens(key, 100)
    clock.now += 3600
    response = await client.post("/chat", headers=_bearer(token))
    _assert_error(response, 429, "budget_exceeded")
    assert response.headers["retry-after"] == str(86_400 - 3600)
    assert (await client.get("/threads", headers=_bearer(token))).json() == {"name": key.name}


async def test_headers_alone_authenticate_with_the_service_given(identity: IdentityService) -> None:
    key, token = await identity.keys.create(unique("grace"), ["llm"])
    headers = Headers({"authorization": f"bearer {token}"})  # the scheme is case-insensitive
    assert (await authenticate_request(headers, "llm", identity=identity)).id == key.principal_id
    with pytest.raises(Forbidden):
        await authenticate_request(headers, "admin", identity=identity)
    with pytest.raises(ConfigurationError):
        await authenticate_request(headers)
    with pytest.raises(Unauthenticated):
        bearer_token({})
    assert bearer_token({"authorization": f"Bearer  {token} "}) == token


async def test_an_app_without_identity_fails_loudly(identity: IdentityService) -> None:
    app = FastAPI()

    @app.get("/x")
    async def guarded(principal: Principal = Depends(require_scope("llm"))) -> str:
        return principal.name

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        with pytest.raises(ConfigurationError):
            await http.get("/x")
    with pytest.raises(ValueError):
        require_scope("root")
