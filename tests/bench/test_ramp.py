"""The ramp's bookkeeping: replica counts read from ``serve status``, requests counted by outcome."""

from typing import Any

from bench.load import ChatMarks
from bench.ramp import KindCounts, RampResult, describe, serve_status_counts

STATUS: dict[str, Any] = {  # the shape `serve status` prints (platform_core.cluster.serve_status parses it)
    "applications": {
        "weather_agent": {
            "status": "RUNNING",
            "deployments": {"weather-chat": {"replica_states": {"RUNNING": 2, "STARTING": 1}}},
        },
        "llm": {"status": "DEPLOYING", "deployments": {"ScriptedLLM": {"replica_states": {}}}},
        "ui": {"status": "RUNNING", "deployments": {}},
    }
}


async def test_replica_counts_are_the_running_replicas_of_each_app() -> None:
    counts = await serve_status_counts(lambda: STATUS)()
    assert counts == {"weather_agent": 2, "llm": 0, "ui": 0}


def test_requests_are_counted_by_outcome_and_described() -> None:
    counts = KindCounts()
    counts.add([ChatMarks(done=1.0), ChatMarks(done=2.0, error="timeout"), ChatMarks(first_event=0.1)])
    counts.add([ChatMarks(error="timeout")])
    assert (counts.sent, counts.answered, counts.failed) == (4, 1, {"timeout": 2, "no_done": 1})

    result = RampResult(
        levels=[(0.0, 1), (15.0, 10)],
        load_ended_s=40.0,
        counts={"chat": counts},
        replicas={"weather_agent": [(0.0, 1), (20.0, 2), (45.0, 1)]},
        baseline={"weather_agent": 1},
        scaled_up_s={"weather_agent": 20.0},
        back_down_s={"weather_agent": 45.0},
    )
    assert result.failed == 3 and result.peak("weather_agent") == 2
    assert result.as_json()["peak"] == {"weather_agent": 2}
    assert describe(result) == [
        "chat: 4 sent, 1 answered, failed: no_done: 1, timeout: 2",
        "weather_agent: 1 -> peak 2 replicas; scaled up at 20 s, back at 45 s (load ended at 40 s); "
        "samples: 1 2 1",
    ]
