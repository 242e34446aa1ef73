"""``IdentityService.identify`` and delegation on both backends: two services on one database stand for
two replicas (an agent's and ``/llm``'s), sharing the platform secret through the database, with a clock
the test moves."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from identity.delegation import PLATFORM_PRINCIPAL_ID
from identity.errors import BudgetExceeded, Forbidden, RateLimited, Unauthenticated
from identity.schema import platform_secrets
from identity.service import SIGNING_SECRET_NAME, Caller, IdentityService
from tests.support.identity import FakeClock, service, unique
from tests.support.persistence import database_fixtures

postgres_url, database_url = database_fixtures()

SHARED_SECRET = "p" * 40


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def replicas(
    database_url: str, clock: FakeClock
) -> AsyncIterator[tuple[IdentityService, IdentityService]]:
    """Two services on one database; no key cache, so a revocation shows at once."""
    one = service(database_url, clock, cache_ttl_s=0)
    two = service(database_url, clock, cache_ttl_s=0)
    await asyncio.gather(one.open(), two.open())
    try:
        yield one, two
    finally:
        await one.aclose()
        await two.aclose()


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_a_key_identifies_its_principal_and_key(
    replicas: tuple[IdentityService, IdentityService],
) -> None:
    one, _ = replicas
    key, token = await one.keys.create(unique("alice"), ["agent:travel"])
    caller = await one.identify(_bearer(token), "agent:travel")
    assert caller == Caller(principal=key.principal, key=key, delegation=None)
    assert not caller.principal.delegated
    assert (await one.identify(_bearer(token))).key == key  # no scope asked: any valid key
    assert await one.authenticate(_bearer(token), "agent:travel") == key.principal
    for scope in ("llm", "agent:weather", "admin"):
        with pytest.raises(Forbidden):
            await one.identify(_bearer(token), scope)


async def test_a_delegation_made_by_one_replica_identifies_the_same_caller_on_another(
    replicas: tuple[IdentityService, IdentityService],
) -> None:
    one, two = replicas
    key, token = await one.keys.create(unique("bob"), ["agent:travel"])
    caller = await one.identify(_bearer(token), "agent:travel")
    delegation = await one.delegate(caller, 60)
    assert delegation.startswith("rapd_")

    hop = await two.identify(_bearer(delegation), "agent:travel")
    assert hop.principal.id == key.principal_id and hop.principal.name == key.name
    assert hop.principal.delegated and hop.principal.scopes == frozenset({"agent:travel"})
    assert hop.key == key and hop.delegation == delegation
    # a delegated hop passes its delegation on unchanged
    assert await two.delegate(hop, 3600) == delegation

    # the two services made (or read) one secret: one row in the database
    async with one.engine.connect() as conn:
        rows = await conn.scalar(
            select(func.count())
            .select_from(platform_secrets)
            .where(platform_secrets.c.name == SIGNING_SECRET_NAME)
        )
    assert rows == 1


async def test_replicas_asking_for_the_secret_at_once_agree_on_it(
    database_url: str, clock: FakeClock
) -> None:
    services = [service(database_url, clock) for _ in range(4)]
    try:
        signers = await asyncio.gather(*(s.signer() for s in services))
        key, _ = await services[0].keys.create(unique("carl"), ["llm"])
        token = signers[0].sign(key.principal, key.key_id, 60)
        for signer in signers:
            assert signer.verify(token).principal.id == key.principal_id
        assert await services[1].signer() is signers[1]  # made once per service
    finally:
        for s in services:
            await s.aclose()


async def test_a_delegated_call_is_allowed_any_scope_but_admin(
    replicas: tuple[IdentityService, IdentityService],
) -> None:
    one, two = replicas
    _, token = await one.keys.create(unique("carol"), ["agent:travel"])
    delegation = await one.delegate(await one.identify(_bearer(token), "agent:travel"), 60)
    for scope in ("llm", "mcp:weather", "agent:weather", "agent:research", None):
        assert (await two.identify(_bearer(delegation), scope)).principal.delegated
    with pytest.raises(Forbidden) as caught:
        await two.identify(_bearer(delegation), "admin")
    assert caught.value.status_code == 403 and caught.value.scope == "admin"
    with pytest.raises(Forbidden):
        await two.identify(_bearer(token), "llm")  # the key itself still lacks llm


async def test_an_admin_keys_delegation_keeps_admin(
    replicas: tuple[IdentityService, IdentityService],
) -> None:
    one, two = replicas
    _, token = await one.keys.create(unique("root"), ["admin"])
    delegation = await one.delegate(await one.identify(_bearer(token)), 60)
    assert (await two.identify(_bearer(delegation), "admin")).principal.is_admin


async def test_an_expired_or_forged_delegation_is_401(
    replicas: tuple[IdentityService, IdentityService], clock: FakeClock
) -> None:
    one, two = replicas
    _, token = await one.keys.create(unique("dan"), ["agent:travel"])
    delegation = await one.delegate(await one.identify(_bearer(token)), 30)
    clock.now += 30
    with pytest.raises(Unauthenticated, match="expired") as caught:
        await two.identify(_bearer(delegation), "llm")
    assert caught.value.status_code == 401
    forged = "rapd_eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    with pytest.raises(Unauthenticated):
        await two.identify(_bearer(forged), "llm")


async def test_a_key_revoked_after_the_delegation_was_made_stops_its_hops(
    replicas: tuple[IdentityService, IdentityService], clock: FakeClock
) -> None:
    one, two = replicas
    name = unique("erin")
    _, token = await one.keys.create(name, ["agent:travel"])
    delegation = await one.delegate(await one.identify(_bearer(token), "agent:travel"), 600)
    assert (await two.identify(_bearer(delegation), "llm")).key is not None
    clock.now += 1
    await one.keys.revoke(name)
    with pytest.raises(Unauthenticated, match="revoked") as caught:
        await two.identify(_bearer(delegation), "llm")
    assert caught.value.status_code == 401
    with pytest.raises(Unauthenticated):
        await two.identify(_bearer(delegation), "llm", check_budget=False)


async def test_a_key_expired_after_the_delegation_was_made_stops_its_hops(
    replicas: tuple[IdentityService, IdentityService], clock: FakeClock
) -> None:
    one, two = replicas
    _, token = await one.keys.create(unique("fay"), ["agent:travel"], expires_in_s=10)
    delegation = await one.delegate(await one.identify(_bearer(token)), 600)
    clock.now += 10
    with pytest.raises(Unauthenticated, match="expired"):
        await two.identify(_bearer(delegation), "llm")


async def test_a_delegation_for_a_key_that_does_not_exist_is_401(
    replicas: tuple[IdentityService, IdentityService],
) -> None:
    one, two = replicas
    key, _ = await one.keys.create(unique("ghost"), ["agent:travel"])
    signer = await one.signer()
    token = signer.sign(key.principal, "f" * 16, 60)  # signed, but for a key id no key has
    with pytest.raises(Unauthenticated):
        await two.identify(_bearer(token), "llm")


async def test_a_spent_budget_refuses_delegated_hops_unless_the_route_needs_no_tokens(
    replicas: tuple[IdentityService, IdentityService], clock: FakeClock
) -> None:
    one, two = replicas
    key, token = await one.keys.create(unique("gina"), ["agent:travel"], token_budget=100)
    caller = await one.identify(_bearer(token), "agent:travel")
    delegation = await one.delegate(caller, 600)
    hop = await two.identify(_bearer(delegation), "llm")
    await two.count_tokens(hop, 60, 40)
    assert (await one.limits.tokens_used(key))[0] == 100
    with pytest.raises(BudgetExceeded) as caught:
        await two.identify(_bearer(delegation), "llm")
    assert caught.value.status_code == 429 and caught.value.code == "budget_exceeded"
    assert caught.value.headers["Retry-After"] == "86400"
    assert (await two.identify(_bearer(delegation), "llm", check_budget=False)).key == key
    with pytest.raises(BudgetExceeded):
        await one.identify(_bearer(token), "agent:travel")  # the user's own next request, too
    clock.now += 86_400  # the next window: the user's next run (and its hops) may spend again
    renewed = await one.delegate(await one.identify(_bearer(token), "agent:travel"), 600)
    assert (await two.identify(_bearer(renewed), "llm")).key == key


async def test_requests_per_minute_count_the_users_requests_not_the_hops(
    replicas: tuple[IdentityService, IdentityService],
) -> None:
    one, two = replicas
    _, token = await one.keys.create(unique("hal"), ["agent:travel"], rpm=1)
    caller = await one.identify(_bearer(token), "agent:travel")
    delegation = await one.delegate(caller, 600)
    for replica in (two, one, two, two, one):
        await replica.identify(_bearer(delegation), "llm")
        await replica.identify(_bearer(delegation), "mcp:weather", check_budget=False)
    with pytest.raises(RateLimited) as caught:
        await two.identify(_bearer(token), "agent:travel")
    assert caught.value.status_code == 429 and "Retry-After" in caught.value.headers
    await two.identify(_bearer(delegation), "llm")  # the run in progress goes on


async def test_count_tokens_adds_to_usage_and_to_the_keys_window(
    replicas: tuple[IdentityService, IdentityService], clock: FakeClock
) -> None:
    one, two = replicas
    key, token = await one.keys.create(unique("ida"), ["agent:travel"], token_budget=10_000)
    caller = await one.identify(_bearer(token))
    hop = await two.identify(_bearer(await one.delegate(caller, 600)), "llm")
    await one.count_tokens(caller, 100, 20)
    await asyncio.gather(two.count_tokens(hop, 30, 5), one.count_tokens(hop, 1, 2))
    rows = await two.usage.read(key.principal_id)
    assert [(r.day, r.prompt_tokens, r.completion_tokens, r.runs) for r in rows] == [
        ("2027-01-16", 131, 27, 0)
    ]
    assert rows[0].principal_name == key.name
    assert (await two.limits.tokens_used(key))[0] == 158

    unbudgeted, unbudgeted_token = await one.keys.create(unique("joe"), ["llm"])
    plain = await one.identify(_bearer(unbudgeted_token), "llm")
    await one.count_tokens(plain, 7, 3)  # usage still counts; no budget window to add to
    assert [
        (r.prompt_tokens, r.completion_tokens) for r in await one.usage.read(unbudgeted.principal_id)
    ] == [(7, 3)]


async def test_the_platforms_own_token_identifies_the_platform_without_a_key(
    replicas: tuple[IdentityService, IdentityService],
) -> None:
    one, two = replicas
    platform_token = (await one.signer()).platform_token()
    caller = await two.identify(_bearer(platform_token), "mcp:weather")
    assert caller.principal.id == PLATFORM_PRINCIPAL_ID and caller.principal.delegated
    assert caller.key is None and caller.delegation == platform_token
    with pytest.raises(Forbidden):
        await two.identify(_bearer(platform_token), "admin")
    await two.count_tokens(caller, 5, 5)  # no key: usage only
    assert [r.prompt_tokens for r in await one.usage.read(PLATFORM_PRINCIPAL_ID)][-1] >= 5


async def test_a_keyless_caller_delegates_without_a_key(
    replicas: tuple[IdentityService, IdentityService],
) -> None:
    one, two = replicas
    key, _ = await one.keys.create(unique("kim"), ["agent:travel"])
    token = await one.delegate(Caller(principal=key.principal), 60)
    hop = await two.identify(_bearer(token), "llm")
    assert hop.key is None and hop.principal.id == key.principal_id


async def test_an_explicit_platform_secret_verifies_across_services_without_the_database_row(
    tmp_path: Path, clock: FakeClock
) -> None:
    one = IdentityService(
        f"sqlite:///{tmp_path / 'one.db'}", clock=clock, cache_clock=clock, platform_secret=SHARED_SECRET
    )
    two = IdentityService(
        f"sqlite:///{tmp_path / 'two.db'}", clock=clock, cache_clock=clock, platform_secret=SHARED_SECRET
    )
    other = IdentityService(f"sqlite:///{tmp_path / 'two.db'}", clock=clock, cache_clock=clock)
    try:
        await asyncio.gather(one.open(), two.open(), other.open())
        key, token = await one.keys.create(unique("lee"), ["agent:travel"])
        delegation = await one.delegate(await one.identify(_bearer(token)), 60)
        # a different database (its keys do not hold the key): the keyless platform token verifies
        platform_token = (await one.signer()).platform_token()
        assert (await two.identify(_bearer(platform_token), "llm")).principal.id == PLATFORM_PRINCIPAL_ID
        with pytest.raises(Unauthenticated):
            await two.identify(_bearer(delegation), "llm")  # signed right, but no such key in two.db
        for opened in (one, two):  # no secret was stored
            async with opened.engine.connect() as conn:
                assert await conn.scalar(select(func.count()).select_from(platform_secrets)) == 0
        # a service on two.db without the explicit secret makes its own and refuses the other's tokens
        with pytest.raises(Unauthenticated):
            await other.identify(_bearer(platform_token), "llm")
    finally:
        for s in (one, two, other):
            await s.aclose()


async def test_an_explicit_platform_secret_is_shared_by_services_on_one_database(
    database_url: str, clock: FakeClock
) -> None:
    one = IdentityService(database_url, clock=clock, cache_clock=clock, platform_secret=SHARED_SECRET)
    two = IdentityService(database_url, clock=clock, cache_clock=clock, platform_secret=SHARED_SECRET)
    try:
        await asyncio.gather(one.open(), two.open())
        key, token = await one.keys.create(unique("mo"), ["agent:travel"])
        delegation = await one.delegate(await one.identify(_bearer(token)), 60)
        hop = await two.identify(_bearer(delegation), "llm")
        assert hop.principal.id == key.principal_id and hop.key == key
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_short_explicit_platform_secret_is_refused(tmp_path: Path) -> None:
    identity = IdentityService(f"sqlite:///{tmp_path / 'x.db'}", platform_secret="too-short")
    try:
        with pytest.raises(ValueError, match="32 bytes"):
            await identity.signer()
    finally:
        await identity.aclose()
