"""A short soak on the real stack (``make soak`` holds 20 chats for 10 minutes; this holds them 1 minute).

Every chat of the minute ends with ``done``; the Serve processes are found and sampled at the start of
the load and at its end, and no replica's open file descriptors grow beyond what its connection pools
may hold open for a moment. The figures go to ``test-artifacts/soak.json`` (RSS is reported, not judged:
a minute is within a process's warm-up, the 10-minute ``make soak`` judges it).
"""

import json
import os

import pytest

from bench.soak import FD_SLACK, describe, soak
from tests.support.paths import REPO_ROOT
from tests.support.stack import ServeStack

pytestmark = pytest.mark.integration

STREAMS = 20


async def test_twenty_chats_held_for_a_minute_fail_none_and_leak_no_descriptors(
    offline_multi: ServeStack,
) -> None:
    result = await soak(
        offline_multi.base_url, streams=STREAMS, seconds=60, window_s=20, root_pid=os.getpid()
    )

    artifacts = REPO_ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "soak.json").write_text(json.dumps(result.as_json(), indent=2) + "\n")
    report = "\n".join(describe(result))

    assert result.errors == 0, report
    assert result.chats >= STREAMS, report
    replicas = [name for name in result.start if name.startswith("ray::ServeReplica:weather_agent:")]
    assert replicas and all(name in result.end for name in replicas), report
    assert {"ray::ProxyActor", "ray::ServeController"} <= set(result.start), report
    assert result.missed(fd_slack=FD_SLACK) == [m for m in result.missed(fd_slack=FD_SLACK) if "RSS" in m], (
        report
    )
