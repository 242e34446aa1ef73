"""Thread owners: in the process, and in the platform database on both backends, where two
``DatabaseThreadOwners`` on one database stand for two replicas (of one agent, or of two)."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from agent_runtime.state.database import Database, thread_key
from agent_runtime.state.owners import DatabaseThreadOwners, LocalThreadOwners, ThreadOwners, thread_owners
from tests.support.persistence import database_fixtures

postgres_url, database_url = database_fixtures()


def _key() -> str:
    return thread_key("tester", uuid.uuid4().hex)


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[tuple[DatabaseThreadOwners, DatabaseThreadOwners]]:
    one, two = Database(database_url), Database(database_url)
    try:
        yield DatabaseThreadOwners(one), DatabaseThreadOwners(two)
    finally:
        await one.aclose()
        await two.aclose()


async def _claims_keep_the_first_owner(one: ThreadOwners, two: ThreadOwners) -> None:
    key, other = _key(), _key()
    assert await one.owner(key) is None
    assert await one.claim(key, "key:alice") == "key:alice"
    assert await two.claim(key, "key:bob") == "key:alice"  # a later claim by another loses
    assert await one.claim(key, "key:alice") == "key:alice"  # claiming again is harmless
    assert await two.owner(key) == "key:alice" and await one.owner(key) == "key:alice"
    assert await two.owner(other) is None  # other threads are untouched
    assert await two.claim(other, "key:bob") == "key:bob"
    assert await one.owner(key) == "key:alice"


async def _forget_frees_the_thread(one: ThreadOwners, two: ThreadOwners) -> None:
    key, kept = _key(), _key()
    await one.claim(key, "key:alice")
    await one.claim(kept, "key:alice")
    await two.forget(key)
    assert await one.owner(key) is None and await two.owner(key) is None
    assert await one.owner(kept) == "key:alice"
    await two.forget(key)  # forgetting twice, or a thread never claimed, is harmless
    await two.forget(_key())
    assert await two.claim(key, "key:bob") == "key:bob"  # a new thread under the old id
    assert await one.owner(key) == "key:bob"


async def _concurrent_claims_agree_on_one_owner(one: ThreadOwners, two: ThreadOwners) -> None:
    for _ in range(5):
        key = _key()
        first, second = await asyncio.gather(one.claim(key, "key:alice"), two.claim(key, "key:bob"))
        assert first == second and first in ("key:alice", "key:bob")
        assert await one.owner(key) == first and await two.owner(key) == first
    key = _key()
    claimants = [f"key:{i}" for i in range(8)]
    results = await asyncio.gather(*((one, two)[i % 2].claim(key, c) for i, c in enumerate(claimants)))
    assert len(set(results)) == 1 and results[0] in claimants


# --- in the process -----------------------------------------------------------------------------------


async def test_local_claims_keep_the_first_owner() -> None:
    owners = LocalThreadOwners()
    await _claims_keep_the_first_owner(owners, owners)


async def test_local_forget_frees_the_thread() -> None:
    owners = LocalThreadOwners()
    await _forget_frees_the_thread(owners, owners)


async def test_local_concurrent_claims_agree_on_one_owner() -> None:
    owners = LocalThreadOwners()
    await _concurrent_claims_agree_on_one_owner(owners, owners)


async def test_local_owners_are_per_instance() -> None:
    one, two = LocalThreadOwners(), LocalThreadOwners()
    key = _key()
    await one.claim(key, "key:alice")
    assert await two.owner(key) is None


# --- in the database ----------------------------------------------------------------------------------


async def test_database_claims_keep_the_first_owner_across_replicas(
    replicas: tuple[DatabaseThreadOwners, DatabaseThreadOwners],
) -> None:
    await _claims_keep_the_first_owner(*replicas)


async def test_database_forget_frees_the_thread_on_every_replica(
    replicas: tuple[DatabaseThreadOwners, DatabaseThreadOwners],
) -> None:
    await _forget_frees_the_thread(*replicas)


async def test_database_concurrent_claims_agree_on_one_owner(
    replicas: tuple[DatabaseThreadOwners, DatabaseThreadOwners],
) -> None:
    await _concurrent_claims_agree_on_one_owner(*replicas)
    key = _key()
    await replicas[0].claim(key, "key:alice")
    async with replicas[1].database.engine.connect() as conn:
        rows = await conn.scalar(
            select(func.count()).select_from(thread_owners).where(thread_owners.c.thread_key == key)
        )
    assert rows == 1


async def test_replicas_starting_together_create_the_table_once(database_url: str) -> None:
    databases = [Database(database_url) for _ in range(3)]
    try:
        owners = [DatabaseThreadOwners(db) for db in databases]
        key = _key()
        # the first use of each creates the table (idempotently, under the schema lock)
        results = await asyncio.gather(*(o.claim(key, f"key:{i}") for i, o in enumerate(owners)))
        assert len(set(results)) == 1
        assert await asyncio.gather(*(o.owner(key) for o in owners)) == results
    finally:
        for db in databases:
            await db.aclose()


async def test_owners_outlive_the_process_that_recorded_them(database_url: str) -> None:
    key = _key()
    async with Database(database_url) as db:
        assert await DatabaseThreadOwners(db).claim(key, "key:alice") == "key:alice"
    async with Database(database_url) as restarted:  # a restart, or another agent's app
        owners = DatabaseThreadOwners(restarted)
        assert await owners.owner(key) == "key:alice"
        assert await owners.claim(key, "key:bob") == "key:alice"
