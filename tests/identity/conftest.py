"""Fixtures of the identity tests: no test leaves a delegation signer installed in the process; Redis."""

import os
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from identity.delegation import install_signer


@pytest.fixture(autouse=True)
def _no_leaked_process_signer() -> Iterator[None]:
    """An opened ``AuthGate`` installs its signer process-wide: uninstall it after every test."""
    try:
        yield
    finally:
        install_signer(None)


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> str:
    """The Redis server the limit counters may use (``TEST_REDIS_URL``, default database 15 of the local
    one); skipped, saying why, when nothing answers there. Tests need no cleanup: every key they count is
    new, and Redis expires counters by itself."""
    parts = urlsplit(REDIS_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2).close()
    except OSError as exc:
        pytest.skip(f"Redis at {REDIS_URL} is not reachable ({exc}); set TEST_REDIS_URL")
    return REDIS_URL
