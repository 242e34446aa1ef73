"""Fixtures of the identity tests: no test leaves a delegation signer installed in the process."""

from collections.abc import Iterator

import pytest

from identity.delegation import install_signer


@pytest.fixture(autouse=True)
def _no_leaked_process_signer() -> Iterator[None]:
    """An opened ``AuthGate`` installs its signer process-wide: uninstall it after every test."""
    try:
        yield
    finally:
        install_signer(None)
