"""``make up/deploy/status/down`` (platform_core.cluster): a background Ray head changed in place.

The lifecycle test runs the real commands, as `make` does, on a cluster of its own (its own run dir, GCS
and dashboard on free ports, the proxy on a free port), next to the test session's Ray instance.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from platform_core.cluster import ClusterFiles, ClusterState, describe_status, read_state
from tests.support.paths import REPO_ROOT
from tests.support.servers import free_port
from tests.support.stack import health, weather_replica


def test_a_state_whose_process_is_gone_is_no_cluster(tmp_path: Path) -> None:
    files = ClusterFiles(tmp_path)
    assert read_state(files) is None  # no file
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    files.state.write_text(json.dumps(ClusterState(dead.pid, 1, 2, 3, "x").__dict__))
    assert read_state(files) is None
    files.state.write_text(json.dumps(ClusterState(os.getpid(), 1, 2, 3, "x").__dict__))
    assert read_state(files) == ClusterState(os.getpid(), 1, 2, 3, "x")


def test_status_shows_each_app_and_its_replicas() -> None:
    status = {
        "applications": {
            "weather_agent": {
                "status": "RUNNING",
                "message": "",
                "deployments": {"weather-chat": {"status": "HEALTHY", "replica_states": {"RUNNING": 2}}},
            },
            "llm": {"status": "DEPLOYING", "message": "building", "deployments": {}},
        }
    }
    assert describe_status(status).splitlines() == [
        "llm                  DEPLOYING      building",
        "weather_agent        RUNNING",
        "  weather-chat               HEALTHY    replicas: RUNNING 2",
    ]
    assert describe_status({}) == "no applications"


def _cluster(run_dir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "platform_core.cluster", "--run-dir", str(run_dir), *args]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # Short: Ray's socket paths under <run dir>/ray/session_*/sockets must stay under 107 characters.
    path = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    try:
        yield path
    finally:
        _cluster(path, "down", timeout=180)
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.integration
def test_up_deploy_status_down(run_dir: Path) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    config = REPO_ROOT / "serve_config.yaml"
    started = _cluster(run_dir, "up", "--config", str(config), "--offline", "--port", str(port))
    assert started.returncode == 0, started.stderr[-3000:]
    state = read_state(ClusterFiles(run_dir))
    assert state is not None and state.gcs_port != 6379 and state.http_port == port
    assert oct(ClusterFiles(run_dir).token.stat().st_mode & 0o777) == "0o600"

    status = _cluster(run_dir, "status")
    assert status.returncode == 0, status.stderr[-3000:]
    for app in ("llm", "mcp_weather", "weather_agent", "ui", "sample_upstream"):
        assert any(line.startswith(app) and "RUNNING" in line for line in status.stdout.splitlines()), (
            status.stdout
        )
    assert "weather-chat               HEALTHY    replicas: RUNNING 1" in status.stdout
    version = health(base_url, "/weather-agent")["config_version"]
    mcp_version = health(base_url, "/mcp-weather")["config_version"]
    replica = weather_replica(base_url)

    # A lightweight change (a deployments: override) updates the running replica in place.
    changed = yaml.safe_load(config.read_text())
    for app in changed["applications"]:
        if app["name"] == "weather_agent":
            app["deployments"] = [{"name": "weather-chat", "max_ongoing_requests": 48}]
    changed_path = run_dir / "changed.yaml"
    changed_path.write_text(yaml.safe_dump(changed))
    deployed = _cluster(run_dir, "deploy", "--config", str(changed_path), "--offline")
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    assert weather_replica(base_url) == replica
    # /health caches the version for a few seconds.
    deadline = time.monotonic() + 60
    while health(base_url, "/weather-agent")["config_version"] == version:
        assert time.monotonic() < deadline, "the new config_version never showed"
        time.sleep(1)
    assert health(base_url, "/mcp-weather")["config_version"] == mcp_version  # unchanged app

    stopped = _cluster(run_dir, "down")
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert read_state(ClusterFiles(run_dir)) is None
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{base_url}/weather-agent/health", timeout=5)
    again = _cluster(run_dir, "status")
    assert again.returncode == 1 and "no cluster is up" in again.stderr
