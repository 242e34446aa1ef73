"""The Redis store of the limit counters (``LIMITS_URL``): what only Redis does. The limits policy on it
(shared by replicas, windows, budgets) is tested on every store in test_store.py."""

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as redis

from identity.errors import LimitsUnavailable, RateLimited
from identity.gate import AuthGate
from identity.limits import TOKENS, Window
from identity.redis_limits import EXPIRY_GRACE_S, KEY_PREFIX, RedisCounters
from identity.service import IdentityService
from platform_core.errors import ConfigurationError
from platform_core.settings import get_settings
from tests.support.identity import FakeClock, service, unique


async def test_counts_expire_by_themselves_after_their_window(redis_url: str) -> None:
    clock = FakeClock()
    counters = RedisCounters(redis_url, clock=clock)
    key_id = unique("k")
    window = Window.around(clock.now + 20, 60)  # 40 s of it left
    clock.now += 20
    try:
        assert await counters.add(key_id, TOKENS, window, 7) == 7
        assert await counters.add(key_id, TOKENS, window, 5) == 12
        assert await counters.read(key_id, TOKENS, window) == 12
        assert await counters.prune(int(clock.now) + 10_000) == 0  # nothing to prune: it expires
        client = redis.from_url(redis_url)
        try:
            ttl = await client.ttl(f"{KEY_PREFIX}:{key_id}:{TOKENS}:{window.start}")
        finally:
            await client.aclose()
        assert 40 <= ttl <= 40 + EXPIRY_GRACE_S
    finally:
        await counters.aclose()


async def test_concurrent_requests_never_pass_the_limit(redis_url: str) -> None:
    clock = FakeClock()
    replicas = [RedisCounters(redis_url, clock=clock) for _ in range(3)]
    key_id, window = unique("k"), Window.around(clock.now, 60)
    try:
        added = await asyncio.gather(
            *(replicas[i % 3].add_below(key_id, "requests", window, 10) for i in range(40))
        )
        assert added.count(True) == 10
        assert await replicas[0].read(key_id, "requests", window) == 10
    finally:
        await asyncio.gather(*(replica.aclose() for replica in replicas))


async def test_an_unreachable_redis_refuses_with_503_not_500(tmp_path: Path) -> None:
    identity = service(f"sqlite:///{tmp_path / 'agents.db'}", FakeClock(), limits_url="redis://127.0.0.1:1/0")
    async with identity:
        key, _ = await identity.keys.create(unique("ann"), ["llm"], rpm=5)
        with pytest.raises(LimitsUnavailable) as refused:
            await identity.limits.check(key)
    assert refused.value.status_code == 503 and refused.value.code == "storage_unavailable"
    assert refused.value.headers["Retry-After"] == "5"


def test_limits_url_must_be_redis(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="LIMITS_URL must be a Redis URL"):
        IdentityService(f"sqlite:///{tmp_path / 'agents.db'}", limits_url="postgresql://db/x")


async def test_the_gate_counts_in_redis_when_limits_url_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str
) -> None:
    for name, value in {
        "AUTH": "on",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'agents.db'}",
        "PLATFORM_SECRET": "s" * 40,
        "LIMITS_URL": redis_url,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    gate = AuthGate()
    try:
        await gate.open()
        assert isinstance(gate.identity.limits.counters, RedisCounters)
        for _ in range(2):  # the calls of one attempt may straddle a minute's end: then once more
            _, token = await gate.identity.keys.create(unique("bo"), ["llm"], rpm=2)
            headers = {"authorization": f"Bearer {token}"}
            minute = int(time.time() // 60)
            await gate.identify(headers, "llm")
            await gate.identify(headers, "llm")
            try:
                await gate.identify(headers, "llm")
            except RateLimited:
                break
            assert int(time.time() // 60) != minute, "a third request in one minute passed rpm=2"
        else:
            pytest.fail("two attempts straddled a minute's end")
    finally:
        await gate.aclose()
        get_settings.cache_clear()
