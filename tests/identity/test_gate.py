"""``AuthGate`` and how auth is decided (``AUTH``, the Serve proxy's host, the credential source), outside
Ray Serve: the proxy's host is what a test says it is."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from identity import gate as gate_module
from identity.delegation import DelegationSigner, process_signer
from identity.errors import Forbidden, Unauthenticated
from identity.gate import (
    ANONYMOUS,
    AuthGate,
    check_credential_source,
    is_loopback,
    resolve_auth,
    serve_proxy_host,
)
from identity.service import IdentityService
from platform_core.errors import ConfigurationError
from platform_core.settings import PlatformSettings, get_settings
from tests.support.identity import FakeClock, service, unique

SECRET = "g" * 40


def _settings(**values: object) -> PlatformSettings:
    """Settings as given, whatever this process's environment says for the fields named."""
    values.setdefault("database_url", None)
    values.setdefault("platform_secret", None)
    return PlatformSettings(**values)  # type: ignore[arg-type]


def _proxy_on(monkeypatch: pytest.MonkeyPatch, host: str | None) -> None:
    async def host_of_proxy() -> str | None:
        return host

    monkeypatch.setattr(gate_module, "serve_proxy_host", host_of_proxy)


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """``get_settings()`` re-read from the environment the test sets (and again after it)."""
    get_settings.cache_clear()
    try:
        yield
    finally:
        get_settings.cache_clear()


@pytest.fixture
async def identity(tmp_path: Path) -> AsyncIterator[IdentityService]:
    async with service(f"sqlite:///{tmp_path / 'agents.db'}", FakeClock()) as opened:
        yield opened


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# --- deciding -----------------------------------------------------------------------------------------


def test_loopback_hosts() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "[::]", "10.0.0.5", "192.168.1.10", "example.com", "my-host", ""):
        assert not is_loopback(host), host


async def test_outside_a_serve_replica_there_is_no_proxy_host() -> None:
    assert await serve_proxy_host() is None


async def test_auth_on_and_off_are_taken_as_said(monkeypatch: pytest.MonkeyPatch) -> None:
    for host in (None, "127.0.0.1", "0.0.0.0"):
        _proxy_on(monkeypatch, host)
        assert await resolve_auth(_settings(auth="on")) == (True, "AUTH=on", host)
        # Off needs no proxy host: the controller is not asked (it may be slow or restarting).
        assert await resolve_auth(_settings(auth="off")) == (False, "AUTH=off", None)


async def test_auth_auto_is_on_when_the_proxy_listens_beyond_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auto = _settings(auth="auto")
    assert auto.auth == "auto" and _settings().auth in ("auto", "on", "off")

    _proxy_on(monkeypatch, None)
    enabled, reason, host = await resolve_auth(auto)
    assert (enabled, host) == (False, None) and "outside a Serve replica" in reason

    for loopback in ("127.0.0.1", "::1", "localhost"):
        _proxy_on(monkeypatch, loopback)
        enabled, reason, host = await resolve_auth(auto)
        assert (enabled, host) == (False, loopback) and "loopback" in reason

    for reachable in ("0.0.0.0", "10.1.2.3", "proxy.internal"):
        _proxy_on(monkeypatch, reachable)
        enabled, reason, host = await resolve_auth(auto)
        assert (enabled, host) == (True, reachable) and reachable in reason


def test_a_reachable_proxy_needs_a_database_url() -> None:
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        check_credential_source(_settings(auth="on"), "0.0.0.0")
    with pytest.raises(ConfigurationError, match="10.0.0.1"):
        check_credential_source(_settings(auth="on"), "10.0.0.1")
    with_database = _settings(auth="on", database_url=SecretStr("postgresql://db.internal/platform"))
    check_credential_source(with_database, "0.0.0.0")
    for host in ("127.0.0.1", "::1", "localhost", None):
        check_credential_source(_settings(auth="on"), host)


def test_oidc_is_a_credential_source_when_replicas_share_a_signing_key() -> None:
    # OIDC needs no key database, but the replicas of a cluster must still share the delegation key.
    with pytest.raises(ConfigurationError, match="PLATFORM_SECRET"):
        check_credential_source(_settings(auth="on"), "0.0.0.0", oidc=True)
    check_credential_source(_settings(auth="on", platform_secret=SecretStr("s" * 40)), "0.0.0.0", oidc=True)


# --- the gate -----------------------------------------------------------------------------------------


async def test_a_closed_gate_lets_everyone_in_as_an_anonymous_admin(identity: IdentityService) -> None:
    gate = AuthGate(enabled=False, identity=identity)
    assert not gate.enabled
    caller = await gate.identify({}, "admin")
    assert caller is ANONYMOUS and caller.principal.is_admin and caller.key is None
    assert await gate.identify({"authorization": "Bearer garbage"}, "llm") is ANONYMOUS
    assert not gate.enabled
    assert await gate.delegate(caller, 60) is None
    await gate.record_usage(caller, runs=1, tool_calls=2)
    await gate.count_tokens(caller, 10, 10)
    assert await identity.usage.read() == []  # nothing counted while auth is off
    with pytest.raises(ConfigurationError):
        _ = gate.identity
    assert process_signer() is None
    await gate.aclose()  # closes nothing it did not open
    await identity.keys.list()  # the identity given is still usable


async def test_an_open_gate_identifies_and_delegates(identity: IdentityService) -> None:
    gate = AuthGate(enabled=True, identity=identity)
    assert not gate.enabled  # undecided until first used
    assert await gate.open() is gate and gate.enabled and gate.identity is identity
    key, token = await identity.keys.create(unique("alice"), ["agent:weather"])

    caller = await gate.identify(_bearer(token), "agent:weather")
    assert caller.principal == key.principal and caller.key == key
    delegation = await gate.delegate(caller, 60)
    assert delegation is not None and delegation.startswith("rapd_")
    hop = await gate.identify(_bearer(delegation), "llm")
    assert hop.principal.id == key.principal_id and hop.principal.delegated and hop.key == key

    # the process's signer is the identity's: PlatformAuth's platform token verifies here
    signer = process_signer()
    assert signer is not None and signer is await identity.signer()
    assert (await gate.identify(_bearer(signer.platform_token()), "mcp:weather")).key is None

    await gate.record_usage(caller, runs=1, tool_calls=3)
    await gate.count_tokens(hop, 12, 4)
    [row] = await identity.usage.read(key.principal_id)
    assert (row.runs, row.tool_calls, row.prompt_tokens, row.completion_tokens) == (1, 3, 12, 4)


async def test_an_open_gate_refuses_what_the_identity_refuses(identity: IdentityService) -> None:
    gate = AuthGate(enabled=True, identity=identity)
    _, token = await identity.keys.create(unique("bob"), ["agent:weather"])
    with pytest.raises(Unauthenticated):
        await gate.identify({}, "agent:weather")
    with pytest.raises(Forbidden):
        await gate.identify(_bearer(token), "agent:travel")


async def test_auth_auto_on_a_reachable_proxy_without_database_url_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, identity: IdentityService
) -> None:
    _proxy_on(monkeypatch, "0.0.0.0")
    monkeypatch.setattr(gate_module, "get_settings", lambda: _settings(auth="auto"))
    gate = AuthGate(identity=identity)
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        await gate.identify({}, "llm")
    assert not gate.enabled and process_signer() is None


async def test_auth_auto_decides_from_the_proxy_host(
    monkeypatch: pytest.MonkeyPatch, identity: IdentityService
) -> None:
    database = SecretStr(str(identity.url.url))
    monkeypatch.setattr(gate_module, "get_settings", lambda: _settings(auth="auto", database_url=database))

    _proxy_on(monkeypatch, "127.0.0.1")
    off = AuthGate(identity=identity)
    assert await off.identify({}, "admin") is ANONYMOUS and not off.enabled

    _proxy_on(monkeypatch, "0.0.0.0")
    on = AuthGate(identity=identity)
    await on.open()
    assert on.enabled and process_signer() is await identity.signer()
    _, token = await identity.keys.create(unique("carol"), ["llm"])
    assert (await on.identify(_bearer(token), "llm")).key is not None


async def test_a_gate_made_from_the_environment_uses_its_database_and_platform_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_settings: None
) -> None:
    url = f"sqlite:///{tmp_path / 'platform.db'}"
    monkeypatch.setenv("AUTH", "on")
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PLATFORM_SECRET", SECRET)
    gate = AuthGate()
    try:
        await gate.open()
        assert gate.enabled and gate.identity.url.sqlite_path == tmp_path / "platform.db"
        key, token = await gate.identity.keys.create(unique("dave"), ["agent:weather"])
        delegation = await gate.delegate(await gate.identify(_bearer(token), "agent:weather"), 60)
        assert delegation is not None
        # anything holding PLATFORM_SECRET verifies the gate's delegations
        assert DelegationSigner(SECRET.encode()).verify(delegation).principal.id == key.principal_id
        assert process_signer() is await gate.identity.signer()
    finally:
        await gate.aclose()


async def test_concurrent_first_requests_open_the_gate_once(
    monkeypatch: pytest.MonkeyPatch, identity: IdentityService
) -> None:
    decided: list[int] = []
    original = AuthGate._decide

    async def counting(self: AuthGate, settings: PlatformSettings) -> None:
        decided.append(1)
        await asyncio.sleep(0.01)
        await original(self, settings)

    monkeypatch.setattr(AuthGate, "_decide", counting)
    gate = AuthGate(enabled=True, identity=identity)
    _, token = await identity.keys.create(unique("erin"), ["llm"])
    callers = await asyncio.gather(*(gate.identify(_bearer(token), "llm") for _ in range(5)))
    assert len(decided) == 1 and len({c.principal.id for c in callers}) == 1


async def test_a_usage_write_finishes_even_when_its_caller_is_cancelled(identity: IdentityService) -> None:
    # A client that leaves cancels the request's task mid-write; the write must still run to its end
    # (a statement cut off between executing and reading would hold SQLite's write lock).
    gate = await AuthGate(enabled=True, identity=identity).open()
    key, token = await identity.keys.create(unique("leaver"), ["agent:weather"])
    caller = await gate.identify({"authorization": f"Bearer {token}"}, "agent:weather")
    writes = [
        asyncio.create_task(gate.record_usage(caller, runs=1, tool_calls=2)),
        asyncio.create_task(gate.count_tokens(caller, 5, 6)),
    ]
    await asyncio.sleep(0)  # started, not finished
    for write in writes:
        write.cancel()
    await asyncio.gather(*writes, return_exceptions=True)
    assert all(write.cancelled() for write in writes), "the caller sees its cancellation"
    await gate.aclose()  # waits for the writes that went on on their own
    rows = await identity.usage.read(key.principal_id)
    assert [(r.runs, r.tool_calls, r.prompt_tokens, r.completion_tokens) for r in rows] == [(1, 2, 5, 6)]
