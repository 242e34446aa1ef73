"""config_version in GET /health: the hash of an app's deployed config entry (real Serve: integration)."""

import pytest

import platform_core.config_version as config_version_module
from agent_runtime.a2a.app import A2AAgentArgs
from agent_runtime.chat.app import ChatAgentArgs
from agents import travel, weather
from platform_core.config_version import config_version, hash_app_config, with_config_version
from platform_core.deployment import SHUTDOWN_MARGIN_S

ENTRY = {"name": "weather_agent", "route_prefix": "/weather-agent", "import_path": "agents.weather:build_app"}


def test_the_version_is_a_stable_hash_of_the_whole_entry() -> None:
    version = hash_app_config(ENTRY)
    assert version == hash_app_config(dict(reversed(list(ENTRY.items()))))  # key order does not matter
    assert len(version) == 16
    assert hash_app_config({**ENTRY, "args": {"max_replicas": 2}}) != version
    overrides = {**ENTRY, "deployments": [{"name": "weather-chat", "num_replicas": 2}]}
    assert hash_app_config(overrides) not in (
        version,
        hash_app_config({**ENTRY, "args": {"max_replicas": 2}}),
    )


async def test_outside_serve_there_is_no_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_version_module, "_cached", None)
    assert await config_version() is None
    assert await with_config_version({"ready": True}) == {"ready": True, "config_version": None}


def _shutdown_s(app: object) -> float:
    timeout: float = app._bound_deployment._deployment_config.graceful_shutdown_timeout_s  # type: ignore[attr-defined]
    return timeout


def test_a_stopping_replica_waits_for_its_longest_wait_and_run() -> None:
    wait_s = ChatAgentArgs().queue_timeout_s  # a request still waiting for a slot may start that late
    longest = wait_s + SHUTDOWN_MARGIN_S
    assert _shutdown_s(weather.build_app(ChatAgentArgs())) == weather.SPEC.run_timeout_s + longest
    assert _shutdown_s(travel.build_app(ChatAgentArgs())) == travel.SPEC.run_timeout_s + longest
    assert _shutdown_s(weather.build_app(ChatAgentArgs(run_timeout_s=600, queue_timeout_s=5))) == (
        600 + 5 + SHUTDOWN_MARGIN_S
    )
    a2a = A2AAgentArgs(route_prefix="/a2a-weather")
    assert (
        _shutdown_s(weather.build_a2a_app(a2a))
        == a2a.task_timeout_s + a2a.queue_timeout_s + SHUTDOWN_MARGIN_S
    )
