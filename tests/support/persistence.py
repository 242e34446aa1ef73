"""Shared pieces of the persistence tests (no tests here): one database per backend.

``database_url`` is parametrized over both backends the platform supports:

- ``sqlite``: a file in the test's temporary directory;
- ``postgresql``: a database of its own, created for the test module on the server at
  ``TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``) and dropped at the end,
  so nothing here touches what other tests keep in that server. Skipped, saying why, when the server
  cannot be reached.
"""

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint

POSTGRES_SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_fixtures() -> tuple[Any, Any]:
    """``(postgres_url, database_url)`` fixtures for a test module: ``postgres_url, database_url =
    database_fixtures()``."""

    @pytest.fixture(scope="module")
    def postgres_url() -> Iterator[str]:
        """A fresh PostgreSQL database for the module's tests (dropped afterwards)."""
        name = f"persistence_test_{uuid.uuid4().hex[:12]}"
        try:
            with psycopg.connect(POSTGRES_SERVER_URL, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as exc:
            pytest.skip(f"PostgreSQL at {POSTGRES_SERVER_URL} is not usable ({exc}); set TEST_POSTGRES_URL")
        try:
            yield _with_database(POSTGRES_SERVER_URL, name)
        finally:
            with psycopg.connect(POSTGRES_SERVER_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @pytest.fixture(params=["sqlite", "postgresql"])
    def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
        """A database URL of each backend (PostgreSQL tests of a module share one database)."""
        if request.param == "sqlite":
            return f"sqlite:///{tmp_path / 'agents.db'}"
        return request.getfixturevalue("postgres_url")

    return postgres_url, database_url


def uuid6_at(moment: datetime, clock_seq: int = 0) -> str:
    """A LangGraph-style (UUIDv6) checkpoint id for ``moment``: backdated checkpoints for retention."""
    timestamp = int(moment.timestamp() * 10_000_000) + 0x01B21DD213814000
    value = ((timestamp >> 12) & 0xFFFFFFFFFFFF) << 80
    value |= 0x6000 << 64 | (timestamp & 0x0FFF) << 64
    value |= (0x8000 | (clock_seq & 0x3FFF)) << 48
    value |= uuid.uuid4().int & 0xFFFFFFFFFFFF
    return str(uuid.UUID(int=value))


async def put_checkpoint(
    saver, key: str, moment: datetime | None = None, messages: list | None = None
) -> None:
    """Store one checkpoint for the thread ``key``, written at ``moment`` (default now)."""
    moment = moment or datetime.now(UTC)
    checkpoint = empty_checkpoint()
    checkpoint["id"] = uuid6_at(moment)
    checkpoint["ts"] = moment.isoformat()
    checkpoint["channel_values"] = {"messages": messages or []}
    checkpoint["channel_versions"] = {"messages": "1"}
    config = {"configurable": {"thread_id": key, "checkpoint_ns": ""}}
    await saver.aput(config, checkpoint, {"source": "input", "step": -1}, {"messages": "1"})
