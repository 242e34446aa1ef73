"""The shared database plumbing on both backends: URLs, the default, engines, idempotent schemas and
connections whose statements commit one by one."""

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from platform_core.errors import PlatformError
from platform_core.settings import PlatformSettings
from platform_core.sql import (
    DatabaseUnavailable,
    DatabaseURL,
    create_engine,
    create_schema,
    default_database_url,
    enable_wal,
    reads_only,
    single_statements,
)
from tests.support.persistence import database_fixtures
from tests.support.servers import free_port

postgres_url, database_url = database_fixtures()

metadata = MetaData()
things = Table(
    "sql_test_things",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, index=True),
)


def test_urls_pick_the_backend_and_never_show_the_password(tmp_path: Path) -> None:
    absolute = DatabaseURL.parse(f"sqlite:///{tmp_path}/a.db")
    assert absolute.kind == "sqlite" and absolute.sqlite_path == tmp_path / "a.db"
    relative = DatabaseURL.parse("sqlite:///data/x.db")
    assert relative.sqlite_path == Path("data/x.db").resolve()

    for scheme in ("postgresql", "postgres", "postgresql+asyncpg", "postgresql+psycopg"):
        url = DatabaseURL.parse(f"{scheme}://agent:s3cret@db.internal:6543/agents?sslmode=require")
        assert url.kind == "postgresql"
        assert url.libpq_url == "postgresql://agent:s3cret@db.internal:6543/agents?sslmode=require"
        assert url.describe() == "PostgreSQL at db.internal:6543/agents"

    for bad in ("mysql://x/y", "agents.db", "sqlite://", "sqlite:///:memory:"):
        with pytest.raises(ValueError):
            DatabaseURL.parse(bad)


def test_default_is_a_sqlite_file_under_the_data_dir(tmp_path: Path) -> None:
    settings = PlatformSettings(data_dir=str(tmp_path / "state"))
    assert default_database_url(settings) == f"sqlite:///{tmp_path / 'state' / 'agents.db'}"
    settings = PlatformSettings(data_dir=str(tmp_path), database_url="postgresql://h/db")
    assert default_database_url(settings) == "postgresql://h/db"
    relative = PlatformSettings(data_dir="./data")
    assert relative.data_path == (Path.cwd() / "data").resolve()


def test_the_agent_runtime_names_are_the_shared_ones() -> None:
    from agent_runtime.state import database

    assert database.DatabaseURL is DatabaseURL
    assert database.DatabaseUnavailable is DatabaseUnavailable
    assert database.create_engine is create_engine
    assert database.single_statements is single_statements
    assert issubclass(DatabaseUnavailable, PlatformError)


async def test_schemas_are_created_idempotently_by_replicas_starting_together(database_url: str) -> None:
    url = DatabaseURL.parse(database_url)
    engines = [create_engine(url), create_engine(url)]
    try:
        await asyncio.gather(*(create_schema(url, engine, metadata.sorted_tables) for engine in engines))
        await create_schema(url, engines[0], metadata.sorted_tables)  # again: nothing to do
        async with single_statements(engines[0]) as conn:
            await conn.execute(insert(things).values(name="a"))
        async with single_statements(engines[1]) as conn:  # committed: the other engine sees it
            assert (await conn.execute(select(func.count()).select_from(things))).scalar() == 1
            await conn.execute(things.delete())
    finally:
        for engine in engines:
            await engine.dispose()


async def test_an_unreachable_database_fails_clearly_without_the_password() -> None:
    port = free_port()
    url = DatabaseURL.parse(f"postgresql://agent:s3cret@127.0.0.1:{port}/agents")
    with pytest.raises(DatabaseUnavailable) as caught:
        await create_schema(url, create_engine(url), metadata.sorted_tables)
    message = str(caught.value)
    assert message.startswith(f"cannot reach PostgreSQL at 127.0.0.1:{port}/agents: ")
    assert "s3cret" not in message and "agent:" not in message


async def test_a_reader_takes_no_write_lock_on_sqlite(tmp_path: Path) -> None:
    """A poller's session (the A2A event stream's) reads while another process holds the write lock."""
    url = DatabaseURL.parse(f"sqlite:///{tmp_path}/locks.db")
    await enable_wal(url.sqlite_path)
    engine = create_engine(url)
    await create_schema(url, engine, metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(insert(things).values(name="kept"))
    holder = sqlite3.connect(url.sqlite_path)  # another process's writer, mid-transaction
    holder.execute("BEGIN IMMEDIATE")
    try:
        reader = async_sessionmaker(reads_only(engine))
        async with asyncio.timeout(5):  # a session that began with BEGIN IMMEDIATE would wait 30 s here
            async with reader() as session:
                names = (await session.execute(select(things.c.name))).scalars().all()
        assert names == ["kept"]
    finally:
        holder.rollback()
        holder.close()
        await engine.dispose()
