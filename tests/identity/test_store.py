"""Keys, verification, limits and usage on both backends, with two services standing for two replicas
(each its own engine on the one database) and a clock the test moves (no waiting on the wall clock)."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from identity.errors import KeyNameTaken, Unauthenticated
from identity.schema import key_counters
from identity.service import IdentityService
from identity.verifier import MAX_CACHE_TTL_S, Verifier
from platform_core.errors import ConfigurationError
from tests.support.identity import START, FakeClock, service, unique
from tests.support.persistence import database_fixtures

postgres_url, database_url = database_fixtures()

COUNTER_STORES = ["sqlite", "postgresql", "redis"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def replicas(
    database_url: str, clock: FakeClock
) -> AsyncIterator[tuple[IdentityService, IdentityService]]:
    one, two = service(database_url, clock), service(database_url, clock)
    await asyncio.gather(one.open(), two.open())  # starting together: the schema is made once
    try:
        yield one, two
    finally:
        await one.aclose()
        await two.aclose()


@pytest.fixture(params=COUNTER_STORES)
async def counting_replicas(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[tuple[IdentityService, IdentityService]]:
    """Two replicas whose limit counters live in the platform database (each backend) or in Redis."""
    if request.param == "redis":
        url, limits_url = f"sqlite:///{tmp_path / 'agents.db'}", request.getfixturevalue("redis_url")
    else:
        url = f"sqlite:///{tmp_path / 'agents.db'}" if request.param == "sqlite" else None
        url, limits_url = url or request.getfixturevalue("postgres_url"), None
    one = service(url, clock, limits_url=limits_url)
    two = service(url, clock, limits_url=limits_url)
    await asyncio.gather(one.open(), two.open())
    try:
        yield one, two
    finally:
        await one.aclose()
        await two.aclose()


# --- keys ---------------------------------------------------------------------------------------------


async def test_a_key_is_stored_without_its_secret_and_read_by_id_and_name(
    replicas: tuple[IdentityService, IdentityService],
) -> None:
    one, two = replicas
    name = unique("alice")
    key, token = await one.keys.create(name, ["agent:travel", "llm", "llm"], rpm=10, expires_in_s=3600)
    assert key.scopes == ("agent:travel", "llm") and key.rpm == 10 and key.expires_at == START + 3600
    _, _, secret = token.split("_", 2)
    stored = await two.keys.get(key.key_id)
    assert stored == key and secret not in repr(stored)
    assert await two.keys.by_name(name) == key
    assert key.key_id in [k.key_id for k in await two.keys.list()]
    assert await two.keys.get("0" * 16) is None


async def test_names_are_unique_and_scopes_and_limits_checked(
    replicas: tuple[IdentityService, IdentityService],
) -> None:
    one, two = replicas
    name = unique("bob")
    await one.keys.create(name, ["llm"])
    with pytest.raises(KeyNameTaken):
        await two.keys.create(name, ["llm"])
    for kwargs in ({"scopes": []}, {"scopes": ["root"]}, {"scopes": ["llm"], "rpm": 0}):
        with pytest.raises(ValueError):
            await one.keys.create(unique("x"), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await one.keys.create("bad name", ["llm"])
    budgeted, _ = await one.keys.create(unique("c"), ["llm"], token_budget=100)
    assert budgeted.budget_window_s == 86_400  # a budget is per day unless said otherwise


# --- verification -------------------------------------------------------------------------------------


async def test_the_verifier_accepts_only_the_right_secret_of_an_active_key(
    replicas: tuple[IdentityService, IdentityService], clock: FakeClock
) -> None:
    one, two = replicas
    key, token = await one.keys.create(unique("carol"), ["agent:weather"], expires_in_s=60)
    assert (await two.verifier.verify(token)).key_id == key.key_id
    prefix, key_id, secret = token.split("_", 2)
    wrong = f"{prefix}_{key_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    unknown = f"{prefix}_{'f' * 16}_{secret}"
    for bad, message in ((wrong, "invalid API key"), (unknown, "invalid API key"), ("sk-123", "malformed")):
        with pytest.raises(Unauthenticated) as caught:
            await two.verifier.verify(bad)
        assert caught.value.message.startswith(message) and caught.value.status_code == 401
        assert secret not in caught.value.message
    clock.now += 60
    with pytest.raises(Unauthenticated, match="expired"):
        await two.verifier.verify(token)


async def test_a_revoked_key_stops_working_on_every_replica_within_the_cache_ttl(
    replicas: tuple[IdentityService, IdentityService], clock: FakeClock
) -> None:
    one, two = replicas
    name = unique("dave")
    key, token = await one.keys.create(name, ["llm"])
    await one.verifier.verify(token)
    await two.verifier.verify(token)  # both replicas hold the key in their caches now

    clock.now += 1
    await one.keys.revoke(name)
    assert (await two.verifier.verify(token)).key_id == key.key_id  # a cached record, for now
    clock.now += two.verifier.cache_ttl_s  # one TTL after the cache read; well within 5 s of the revocation
    for replica in (one, two):
        with pytest.raises(Unauthenticated, match="revoked"):
            await replica.verifier.verify(token)
    first = (await one.keys.by_name(name)).revoked_at  # type: ignore[union-attr]
    clock.now += 10
    assert (await two.keys.revoke(name)).revoked_at == first  # type: ignore[union-attr]
    assert await two.keys.revoke(unique("nobody")) is None


async def test_the_cache_may_hold_a_key_for_five_seconds_at_most(
    replicas: tuple[IdentityService, IdentityService],
) -> None:
    Verifier(replicas[0].keys, cache_ttl_s=MAX_CACHE_TTL_S)
    with pytest.raises(ConfigurationError):
        Verifier(replicas[0].keys, cache_ttl_s=MAX_CACHE_TTL_S + 0.1)


async def test_a_flood_of_made_up_key_ids_keeps_the_cache_bounded(
    replicas: tuple[IdentityService, IdentityService], clock: FakeClock
) -> None:
    verifier = Verifier(replicas[0].keys, clock=clock, max_entries=3)
    _, token = await replicas[0].keys.create(unique("eve"), ["llm"])
    for i in range(10):
        with pytest.raises(Unauthenticated):
            await verifier.verify(f"rap_{i:016x}_{token.split('_', 2)[2]}")
    await verifier.verify(token)
    assert len(verifier._cache) == 3


# --- limits -------------------------------------------------------------------------------------------


async def test_requests_per_minute_are_shared_by_the_replicas(
    counting_replicas: tuple[IdentityService, IdentityService], clock: FakeClock
) -> None:
    one, two = counting_replicas
    key, _ = await one.keys.create(unique("frank"), ["llm"], rpm=4)
    clock.now += 15
    decisions = await asyncio.gather(
        *(replica.limits.check(key) for replica in (one, two, one, two, one, two))
    )
    assert sorted(d.outcome for d in decisions) == ["allowed"] * 4 + ["rate_limited"] * 2
    refused = next(d for d in decisions if not d.allowed)
    assert refused.retry_after_s == 45  # the rest of the minute
    clock.now += 45  # the next minute
    assert (await two.limits.check(key)).allowed
    unlimited, _ = await one.keys.create(unique("g"), ["llm"])
    assert all([(await one.limits.check(unlimited)).allowed for _ in range(20)])


async def test_a_token_budget_is_shared_by_the_replicas_and_renews_each_window(
    counting_replicas: tuple[IdentityService, IdentityService], clock: FakeClock
) -> None:
    one, two = counting_replicas
    key, _ = await one.keys.create(unique("grace"), ["llm"], token_budget=1000, budget_window_s=3600)
    assert (await one.limits.check(key)).tokens_left == 1000
    await asyncio.gather(one.limits.add_tokens(key, 400), two.limits.add_tokens(key, 500))
    decision = await two.limits.check(key)
    assert decision.allowed and decision.tokens_left == 100
    assert await one.limits.add_tokens(key, 150) == 1050  # a run may overshoot; the next one is refused
    clock.now += 600
    decision = await one.limits.check(key)
    assert (
        decision.outcome == "budget_exceeded" and decision.retry_after_s == 3000 and decision.tokens_left == 0
    )
    clock.now += 3000  # the next window
    assert (await two.limits.check(key)).tokens_left == 1000


async def test_a_request_refused_for_its_budget_is_not_counted_against_its_rate(
    counting_replicas: tuple[IdentityService, IdentityService], clock: FakeClock
) -> None:
    one, _ = counting_replicas
    key, _ = await one.keys.create(unique("heidi"), ["llm"], rpm=1, token_budget=10)
    await one.limits.add_tokens(key, 10)
    assert (await one.limits.check(key)).outcome == "budget_exceeded"
    clock.now += 86_400
    assert (await one.limits.check(key)).allowed
    assert (await one.limits.check(key)).outcome == "rate_limited"


async def test_old_counters_are_pruned(
    replicas: tuple[IdentityService, IdentityService], clock: FakeClock
) -> None:
    one, two = replicas
    key, _ = await one.keys.create(unique("ivan"), ["llm"], rpm=5)
    await one.limits.check(key)
    clock.now += 2 * 86_400
    await one.limits.check(key)
    assert await two.limits.prune() >= 1

    async with two.engine.connect() as conn:
        left = await conn.scalar(
            select(func.count()).select_from(key_counters).where(key_counters.c.key_id == key.key_id)
        )
    assert left == 1


# --- usage --------------------------------------------------------------------------------------------


async def test_usage_is_added_per_principal_and_day_by_every_replica(
    replicas: tuple[IdentityService, IdentityService], clock: FakeClock
) -> None:
    one, two = replicas
    key, _ = await one.keys.create(unique("judy"), ["agent:*"])
    principal = key.principal
    await asyncio.gather(
        one.usage.record(principal, runs=1, prompt_tokens=100, completion_tokens=20, tool_calls=2),
        two.usage.record(principal, runs=1, prompt_tokens=50, completion_tokens=5),
    )
    clock.now += 86_400
    await two.usage.record(principal, runs=1, tool_calls=3)
    rows = await one.usage.read(principal.id)
    assert [(r.day, r.runs, r.prompt_tokens, r.completion_tokens, r.tool_calls) for r in rows] == [
        ("2027-01-16", 2, 150, 25, 2),
        ("2027-01-17", 1, 0, 0, 3),
    ]
    assert all(r.principal_name == key.name for r in rows)
    assert [r.day for r in await two.usage.read(principal.id, since_day="2027-01-17")] == ["2027-01-17"]
    assert principal.id in {r.principal_id for r in await two.usage.read()}
    with pytest.raises(ValueError):
        await one.usage.record(principal, runs=-1)
