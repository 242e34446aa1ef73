"""``platform-keys`` run as the console script it is (``.venv/bin/platform-keys``), on both backends,
finding the database through ``DATABASE_URL`` as the apps do."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from identity.service import IdentityService
from tests.support.identity import unique
from tests.support.persistence import database_fixtures

postgres_url, database_url = database_fixtures()

SCRIPT = Path(sys.executable).parent / "platform-keys"


def _keys(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.is_file(), f"{SCRIPT} is missing: run `make install` (uv sync installs the console script)"
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


async def test_create_prints_the_secret_once_on_its_last_line_and_it_works(database_url: str) -> None:
    name = unique("alice")
    made = _keys(
        database_url, "create", "--name", name, "--scope", "agent:travel", "--scope", "llm",
        "--rpm", "30", "--token-budget", "5000", "--budget-window", "12h", "--expires-in", "30d",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    *table, token = made.stdout.splitlines()
    assert token.startswith("rap_") and token == token.strip()
    assert name in table[1] and "agent:travel llm" in table[1] and "5000/12h" in table[1]
    assert token not in made.stderr

    async with IdentityService(database_url) as identity:
        key = await identity.verifier.verify(token)
        assert key.name == name and key.rpm == 30 and key.budget_window_s == 12 * 3600
        assert key.expires_at is not None and key.expires_at - key.created_at == 30 * 86_400

    listed = _keys(database_url, "list")
    assert listed.returncode == 0 and name in listed.stdout and "active" in listed.stdout
    assert token.split("_", 2)[2] not in listed.stdout

    again = _keys(database_url, "create", "--name", name, "--scope", "llm")
    assert again.returncode == 1 and "exists already" in again.stderr and again.stdout == ""


async def test_revoke_and_usage(database_url: str) -> None:
    name = unique("bob")
    token = _keys(database_url, "create", "--name", name, "--scope", "agent:*").stdout.splitlines()[-1]
    async with IdentityService(database_url) as identity:
        key = await identity.verifier.verify(token)
        await identity.usage.record(
            key.principal, runs=2, prompt_tokens=120, completion_tokens=30, tool_calls=4
        )

    usage = _keys(database_url, "usage", name, "--days", "1")
    assert usage.returncode == 0, usage.stderr
    header, row = usage.stdout.splitlines()
    assert header.split()[:3] == ["principal", "day", "runs"]
    assert row.split()[0] == name and row.split()[2:] == ["2", "120", "30", "4"]
    assert name in _keys(database_url, "usage").stdout

    revoked = _keys(database_url, "revoke", name)
    assert revoked.returncode == 0 and name in revoked.stdout
    async with IdentityService(database_url) as identity:
        with pytest.raises(Exception, match="revoked"):
            await identity.verifier.verify(token)
    assert "revoked" in _keys(database_url, "list").stdout
    assert _keys(database_url, "revoke", name).returncode == 0  # idempotent


def test_mistakes_fail_with_a_message_and_no_output(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'agents.db'}"
    for args, status, said in (
        (["revoke", "nobody"], 1, "no key named 'nobody'"),
        (["usage", "nobody"], 1, "no key named 'nobody'"),
        (["create", "--name", "x", "--scope", "root"], 2, "not a scope"),
        (["create", "--name", "x"], 2, "--scope"),
        (["create", "--name", "x", "--scope", "llm", "--rpm", "0"], 2, "positive"),
        (["create", "--name", "x", "--scope", "llm", "--expires-in", "soon"], 2, "not a duration"),
        (["create", "--name", "x", "--scope", "llm", "--budget-window", "1d"], 2, "--token-budget"),
        (["create", "--name", "bad name", "--scope", "llm"], 1, "not a key name"),
    ):
        done = _keys(url, *args)
        assert (done.returncode, done.stdout) == (status, ""), (args, done.stdout, done.stderr)
        assert said in done.stderr, (args, done.stderr)
    unusable = _keys("mysql://db/x", "list")
    assert unusable.returncode == 1 and "unsupported DATABASE_URL" in unusable.stderr
