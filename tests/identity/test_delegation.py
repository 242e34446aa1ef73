"""Delegation tokens without a database: signing and verifying, the platform's own token, delegated
scopes, the run's delegation in a context variable, and ``PlatformAuth`` sending it to the platform only."""

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest

from identity.delegation import (
    PLATFORM_PRINCIPAL_ID,
    PLATFORM_TOKEN_REFRESH_S,
    PLATFORM_TOKEN_TTL_S,
    TOKEN_PREFIX,
    DelegationSigner,
    PlatformAuth,
    acting_for,
    clear_delegation,
    current_delegation,
    is_delegation_token,
)
from identity.errors import Unauthenticated
from identity.scopes import Principal
from tests.support.identity import START, FakeClock

SECRET = b"s" * 32
PLATFORM = "http://127.0.0.1:8000"
ALICE = Principal(id="key:00112233aabbccdd", name="alice", scopes=frozenset({"agent:travel", "llm"}))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def signer(clock: FakeClock) -> DelegationSigner:
    return DelegationSigner(SECRET, clock=clock)


def _claims(token: str) -> dict[str, Any]:
    payload = token.removeprefix(TOKEN_PREFIX).partition(".")[0]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def _encode(claims: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()


def _assert_invalid(signer: DelegationSigner, token: str, message: str = "invalid delegation token") -> None:
    with pytest.raises(Unauthenticated) as caught:
        signer.verify(token)
    assert caught.value.status_code == 401 and caught.value.code == "unauthenticated"
    assert caught.value.message == message
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer ")


# --- signing and verifying ----------------------------------------------------------------------------


def test_a_signed_token_verifies_to_the_principal_marked_delegated(
    signer: DelegationSigner, clock: FakeClock
) -> None:
    token = signer.sign(ALICE, "00112233aabbccdd", ttl_s=60)
    assert token.startswith("rapd_") and is_delegation_token(token)
    assert not is_delegation_token("rap_00112233aabbccdd_secret")
    delegation = signer.verify(token)
    assert delegation.principal == Principal(
        id=ALICE.id, name="alice", scopes=frozenset({"agent:travel", "llm"}), delegated=True
    )
    assert delegation.key_id == "00112233aabbccdd"
    assert delegation.expires_at == START + 60
    assert not ALICE.delegated  # the signed principal itself is left as it was

    keyless = signer.verify(signer.sign(ALICE, None, ttl_s=60))
    assert keyless.key_id is None and keyless.principal.delegated

    other = DelegationSigner(SECRET, clock=clock)  # another replica with the same secret
    assert other.verify(token) == delegation


def test_a_tampered_payload_or_signature_is_401(signer: DelegationSigner) -> None:
    token = signer.sign(ALICE, "00112233aabbccdd", ttl_s=60)
    payload, _, signature = token.removeprefix(TOKEN_PREFIX).partition(".")

    # the same claims but more scopes (and a later expiry), under the original signature
    claims = _claims(token) | {"scopes": ["admin"], "exp": START + 10**6}
    _assert_invalid(signer, f"{TOKEN_PREFIX}{_encode(claims)}.{signature}")
    # one character of the payload changed
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    _assert_invalid(signer, f"{TOKEN_PREFIX}{flipped}.{signature}")
    # one character of the signature changed, or the signature cut or missing
    bad_signature = ("A" if signature[0] != "A" else "B") + signature[1:]
    _assert_invalid(signer, f"{TOKEN_PREFIX}{payload}.{bad_signature}")
    _assert_invalid(signer, f"{TOKEN_PREFIX}{payload}.{signature[:-1]}")
    _assert_invalid(signer, f"{TOKEN_PREFIX}{payload}.")
    _assert_invalid(signer, f"{TOKEN_PREFIX}{payload}")


def test_a_token_of_another_secret_or_garbage_is_401(signer: DelegationSigner, clock: FakeClock) -> None:
    foreign = DelegationSigner(b"x" * 32, clock=clock).sign(ALICE, None, ttl_s=60)
    _assert_invalid(signer, foreign)
    for garbage in ("", "rapd_", "rapd_.", "rapd_..", "rapd_abc.def", "garbage", "rap_x_y", "rapd_!!!.???"):
        _assert_invalid(signer, garbage)
    # the payload is not the signer's format, though correctly signed (as a leaked secret could)
    for claims in ({"sub": "x"}, {"sub": "x", "name": "x", "scopes": 3, "key": None, "exp": 1e12}):
        payload = _encode(claims)
        _assert_invalid(signer, f"{TOKEN_PREFIX}{payload}.{signer._signature(payload)}")
    not_json = base64.urlsafe_b64encode(b"\xff not json").rstrip(b"=").decode()
    _assert_invalid(signer, f"{TOKEN_PREFIX}{not_json}.{signer._signature(not_json)}")


def test_an_expired_token_is_401(signer: DelegationSigner, clock: FakeClock) -> None:
    token = signer.sign(ALICE, None, ttl_s=30)
    clock.now += 29.9
    assert signer.verify(token).principal.id == ALICE.id
    clock.now = START + 30  # expiry is exclusive
    _assert_invalid(signer, token, "this delegation token has expired")
    clock.now += 3600
    _assert_invalid(signer, token, "this delegation token has expired")


def test_a_secret_under_32_bytes_is_refused() -> None:
    for short in (b"", b"x" * 31):
        with pytest.raises(ValueError, match="32 bytes"):
            DelegationSigner(short)
    DelegationSigner(b"x" * 32)


def test_the_platform_token_is_reused_until_near_its_expiry(
    signer: DelegationSigner, clock: FakeClock
) -> None:
    first = signer.platform_token()
    delegation = signer.verify(first)
    assert delegation.principal.id == PLATFORM_PRINCIPAL_ID and delegation.principal.delegated
    assert delegation.key_id is None and delegation.principal.scopes == frozenset()
    assert delegation.expires_at == START + PLATFORM_TOKEN_TTL_S

    clock.now += PLATFORM_TOKEN_TTL_S - PLATFORM_TOKEN_REFRESH_S  # exactly the refresh margin left
    assert signer.platform_token() == first
    clock.now += 1  # less than the margin left: minted again
    second = signer.platform_token()
    assert second != first
    assert signer.verify(second).expires_at == clock.now + PLATFORM_TOKEN_TTL_S
    assert signer.platform_token() == second
    signer.verify(first)  # the old one is still valid for its last minute


# --- delegated scopes ---------------------------------------------------------------------------------


def test_a_delegated_principal_is_allowed_every_scope_but_admin() -> None:
    delegated = Principal(id="key:1", name="bob", scopes=frozenset({"agent:travel"}), delegated=True)
    for scope in ("agent:travel", "agent:weather", "agent:*", "llm", "mcp:weather", "mcp:*"):
        assert delegated.allows(scope), scope
    assert not delegated.allows("admin")
    assert not delegated.is_admin

    direct = Principal(id="key:1", name="bob", scopes=frozenset({"agent:travel"}))
    assert direct.allows("agent:travel")
    assert not any(direct.allows(scope) for scope in ("agent:weather", "llm", "mcp:weather", "admin"))

    admin = Principal(id="key:2", name="root", scopes=frozenset({"admin"}), delegated=True)
    assert admin.allows("admin") and admin.allows("llm") and admin.is_admin


# --- the run's delegation -----------------------------------------------------------------------------


async def test_acting_for_nests_and_tasks_started_inside_inherit_it() -> None:
    assert current_delegation() is None
    with acting_for("outer"):
        assert current_delegation() == "outer"
        with acting_for("inner"):
            assert current_delegation() == "inner"
            with acting_for(None):
                assert current_delegation() is None
            assert current_delegation() == "inner"
        assert current_delegation() == "outer"

        async def seen_later() -> str | None:
            await asyncio.sleep(0)
            return current_delegation()

        task = asyncio.create_task(seen_later())
        with acting_for("after the task started"):
            assert await task == "outer"  # a task keeps the context it was created in
        seen = await asyncio.gather(seen_later(), asyncio.to_thread(current_delegation))
        assert list(seen) == ["outer"] * 2

        async def shared_task() -> str | None:
            clear_delegation()
            return current_delegation()

        assert await asyncio.create_task(shared_task()) is None
        assert current_delegation() == "outer"  # clearing in the task leaves the run's context alone
    assert current_delegation() is None


async def test_acting_for_is_undone_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError):
        with acting_for("token"):
            raise RuntimeError("the run failed")
    assert current_delegation() is None


async def test_concurrent_runs_each_see_their_own_delegation() -> None:
    async def run(token: str) -> list[str | None]:
        seen = []
        with acting_for(token):
            for _ in range(3):
                await asyncio.sleep(0)
                seen.append(current_delegation())
        return seen

    assert list(await asyncio.gather(run("a"), run("b"))) == [["a"] * 3, ["b"] * 3]


# --- PlatformAuth -------------------------------------------------------------------------------------


class _Recorder:
    """A mock transport that answers 200 and keeps the Authorization header of each request by URL."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((str(request.url), request.headers.get("authorization")))
        return httpx.Response(200, json={})


def _client(recorder: _Recorder, auth: PlatformAuth) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(recorder), auth=auth)


async def _authorization(
    client: httpx.AsyncClient, recorder: _Recorder, url: str, **kwargs: Any
) -> str | None:
    await client.get(url, **kwargs)
    return recorder.seen[-1][1]


async def test_platform_auth_sends_the_platform_token_or_the_runs_delegation_to_the_platform(
    signer: DelegationSigner,
) -> None:
    recorder = _Recorder()
    delegation = signer.sign(ALICE, "00112233aabbccdd", ttl_s=60)
    async with _client(recorder, PlatformAuth(PLATFORM, signer=lambda: signer)) as client:
        url = f"{PLATFORM}/llm/v1/models"
        assert await _authorization(client, recorder, url) == f"Bearer {signer.platform_token()}"
        with acting_for(delegation):
            assert await _authorization(client, recorder, url) == f"Bearer {delegation}"
            # the caller's own header is replaced on the platform's proxy: the run's identity goes there
            sent = await _authorization(client, recorder, url, headers={"Authorization": "Bearer rap_user"})
            assert sent == f"Bearer {delegation}"
            # the same origin spelled otherwise (an upper-case scheme)
            assert await _authorization(client, recorder, "HTTP://127.0.0.1:8000/mcp/weather/mcp") == (
                f"Bearer {delegation}"
            )
        assert await _authorization(client, recorder, url) == f"Bearer {signer.platform_token()}"
    assert all(auth is not None and auth.startswith("Bearer rapd_") for _, auth in recorder.seen)


async def test_platform_auth_sends_nothing_to_another_origin(signer: DelegationSigner) -> None:
    recorder = _Recorder()
    delegation = signer.sign(ALICE, None, ttl_s=60)
    auth = PlatformAuth(PLATFORM, signer=lambda: signer)
    async with _client(recorder, auth) as client:
        with acting_for(delegation):
            for url in (
                "http://example.com/v1/models",
                "http://127.0.0.1:9000/llm/v1/models",  # the same host on another port
                "https://127.0.0.1:8000/llm/v1/models",  # another scheme
                "http://127.0.0.2:8000/llm/v1/models",
                "http://127.0.0.1/llm/v1/models",  # port 80
            ):
                assert await _authorization(client, recorder, url) is None, url
                assert auth.token_for(url) is None
                own = await _authorization(client, recorder, url, headers={"Authorization": "Bearer sk-up"})
                assert own == "Bearer sk-up", url


async def test_platform_auth_on_a_default_port_matches_the_elided_port(signer: DelegationSigner) -> None:
    recorder = _Recorder()
    async with _client(recorder, PlatformAuth("https://platform.example", signer=lambda: signer)) as client:
        token = f"Bearer {signer.platform_token()}"
        assert await _authorization(client, recorder, "https://platform.example:443/llm") == token
        assert await _authorization(client, recorder, "https://platform.example/llm") == token
        assert await _authorization(client, recorder, "http://platform.example/llm") is None


async def test_platform_auth_without_delegation_always_sends_the_platform_token(
    signer: DelegationSigner,
) -> None:
    recorder = _Recorder()
    async with _client(recorder, PlatformAuth(PLATFORM, delegate=False, signer=lambda: signer)) as client:
        with acting_for(signer.sign(ALICE, None, ttl_s=60)):
            sent = await _authorization(client, recorder, f"{PLATFORM}/mcp/weather/mcp")
    assert sent == f"Bearer {signer.platform_token()}"
    assert signer.verify(sent.removeprefix("Bearer ")).principal.id == PLATFORM_PRINCIPAL_ID


async def test_platform_auth_without_a_signer_sends_nothing(signer: DelegationSigner) -> None:
    recorder = _Recorder()
    auth = PlatformAuth(PLATFORM, signer=lambda: None)
    async with _client(recorder, auth) as client:
        with acting_for(signer.sign(ALICE, None, ttl_s=60)):
            assert await _authorization(client, recorder, f"{PLATFORM}/llm/v1/models") is None
            own = await _authorization(
                client, recorder, f"{PLATFORM}/llm/v1/models", headers={"Authorization": "Bearer mine"}
            )
            assert own == "Bearer mine"
    assert auth.token_for(f"{PLATFORM}/llm/v1/models") is None


async def test_platform_auth_reads_the_signer_on_every_request(signer: DelegationSigner) -> None:
    installed: list[DelegationSigner | None] = [None]
    recorder = _Recorder()
    async with _client(recorder, PlatformAuth(PLATFORM, signer=lambda: installed[0])) as client:
        assert await _authorization(client, recorder, f"{PLATFORM}/llm") is None
        installed[0] = signer  # the identity opened after the client was made
        assert (
            await _authorization(client, recorder, f"{PLATFORM}/llm") == f"Bearer {signer.platform_token()}"
        )
