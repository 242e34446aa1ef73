"""A long-lived local Ray cluster changed in place, as production is: ``make up/deploy/status/down``.

``make run`` is the foreground dev loop (``serve run``: Ctrl-C tears everything down). This module keeps a
Ray head running in the background and applies configs to it with ``serve deploy``, so a config change
rolls out while the apps keep serving, exactly as on a production cluster:

- ``up``: start a Ray head (GCS and dashboard on free loopback ports, never 6379; Ray's Prometheus
  metrics on ``--metrics-port``, default 8080) unless one of ours is running, then ``deploy``;
- ``deploy``: the config through :func:`platform_core.serve_config.for_local_run` (port, ``OFFLINE``),
  ``serve deploy`` to the running head, then wait until every app is ``RUNNING`` (or one failed);
- ``status``: each app, its status, and each deployment's replicas by state;
- ``down``: ``serve shutdown``, then stop the head (only ours: the ``ray start --block`` process this
  module started and its children, never another Ray on the machine).

The head's ports and process id are kept in ``.run/cluster.json``. The head runs with Ray's token
authentication (``RAY_AUTH_MODE=token``): its token is generated into ``.run/ray-auth-token`` (mode 0600)
and given to every Ray CLI this module runs (``RAY_AUTH_TOKEN_PATH``); use the same two variables to run
``ray`` or ``serve`` commands against it yourself. Logical CPUs (``--num-cpus``) are a reservation budget
for the configs' fractional ``num_cpus``, not cores: the default leaves autoscaling room on a small
machine.

    .venv/bin/python -m platform_core.cluster up --config serve_multi_config.yaml --offline
"""

import argparse
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from platform_core.serve_config import for_local_run, load_config
from platform_core.serve_run import DEFAULT_METRICS_PORT, metrics_url

logger = logging.getLogger("platform_core.cluster")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUN_DIR = REPO_ROOT / ".run"
DEFAULT_CONFIG = "serve_multi_config.yaml"
START_TIMEOUT_S = 180.0
DEPLOY_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class ClusterFiles:
    """Where a cluster's state lives (``.run/`` by default; ``--run-dir`` for another, e.g. in tests)."""

    run_dir: Path = DEFAULT_RUN_DIR

    @property
    def state(self) -> Path:
        """The head's ports and process id."""
        return self.run_dir / "cluster.json"

    @property
    def token(self) -> Path:
        """Ray's authentication token of this head (mode 0600)."""
        return self.run_dir / "ray-auth-token"

    @property
    def log(self) -> Path:
        """What ``ray start`` printed."""
        return self.run_dir / "cluster.log"


class ClusterError(RuntimeError):
    """A cluster command could not do what it was asked (the message says what to do)."""


@dataclass
class ClusterState:
    """What ``up`` started: the ``ray start --block`` process and the head's ports."""

    pid: int
    gcs_port: int
    dashboard_port: int
    http_port: int
    temp_dir: str
    metrics_port: int | None = None

    @property
    def dashboard_url(self) -> str:
        """Where ``serve deploy`` / ``serve status`` talk to the head."""
        return f"http://127.0.0.1:{self.dashboard_port}"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(files: ClusterFiles) -> ClusterState | None:
    """The running cluster started by ``up``, or ``None`` (no state file, or its process is gone)."""
    try:
        state = ClusterState(**json.loads(files.state.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return state if _alive(state.pid) else None


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def ray_env(files: ClusterFiles) -> dict[str, str]:
    """The environment of a Ray CLI talking to our head: token authentication with our token file."""
    return {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(files.token)}


def _new_token(files: ClusterFiles) -> None:
    files.run_dir.mkdir(parents=True, exist_ok=True)
    files.token.touch(mode=0o600)
    files.token.chmod(0o600)
    files.token.write_text(secrets.token_hex(32))


def _run(
    files: ClusterFiles, command: Sequence[str], *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    logger.debug("running %s", " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=ray_env(files))
    if check and result.returncode != 0:
        raise ClusterError(f"{' '.join(command[:3])} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


def _wait_dashboard(files: ClusterFiles, state: ClusterState, process: subprocess.Popen[bytes]) -> None:
    log_path = files.log
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ClusterError(f"ray start exited ({process.returncode}); see {log_path}")
        try:
            headers = {"Authorization": f"Bearer {files.token.read_text().strip()}"}
            if httpx.get(f"{state.dashboard_url}/api/version", headers=headers, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise ClusterError(f"the Ray dashboard did not answer within {START_TIMEOUT_S:.0f}s; see {log_path}")


def up(files: ClusterFiles, http_port: int, num_cpus: float, metrics_port: int) -> ClusterState:
    """Start a Ray head of ours in the background (or find the one running)."""
    running = read_state(files)
    if running is not None:
        logger.info("cluster already up (ray pid %d, dashboard %s)", running.pid, running.dashboard_url)
        return running
    files.run_dir.mkdir(parents=True, exist_ok=True)
    temp_dir = files.run_dir / "ray"
    log_path = files.log
    gcs_port, dashboard_port = free_port(), free_port()
    command = [
        _bin("ray"), "start", "--head", "--block",
        f"--port={gcs_port}", f"--num-cpus={num_cpus:g}",
        "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}", "--include-dashboard=true",
        f"--temp-dir={temp_dir}", "--disable-usage-stats", f"--metrics-export-port={metrics_port}",
    ]  # fmt: skip
    _new_token(files)
    env = {**ray_env(files), "PYTHONPATH": str(REPO_ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    state = ClusterState(process.pid, gcs_port, dashboard_port, http_port, str(temp_dir), metrics_port)
    try:
        _wait_dashboard(files, state, process)
    except ClusterError:
        _stop_process(process.pid)
        raise
    files.state.write_text(json.dumps(asdict(state)))
    logger.info(
        "Ray head up: GCS 127.0.0.1:%d, dashboard %s, metrics %s (log: %s)",
        gcs_port, state.dashboard_url, metrics_url(metrics_port), log_path,
    )  # fmt: skip
    return state


def _require_state(files: ClusterFiles) -> ClusterState:
    state = read_state(files)
    if state is None:
        raise ClusterError("no cluster is up: start one with `make up` (python -m platform_core.cluster up)")
    return state


def deploy(files: ClusterFiles, config_path: Path, *, offline: bool, wait: bool = True) -> dict[str, Any]:
    """``serve deploy`` the config to the running cluster; returns the ``serve status`` once settled."""
    state = _require_state(files)
    config = for_local_run(
        load_config(config_path),
        port=state.http_port,
        offline=offline,
        env={"PYTHONPATH": str(REPO_ROOT)},
    )
    target = files.run_dir / f"deployed-{config_path.name}"
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    _run(files, [_bin("serve"), "deploy", str(target), "--address", state.dashboard_url])
    names = [app["name"] for app in config["applications"]]
    logger.info("deployed %s (%d apps%s); waiting for them", config_path, len(names), ", offline" * offline)
    return wait_running(files, names) if wait else serve_status(files)


def serve_status(files: ClusterFiles) -> dict[str, Any]:
    """``serve status`` of the running cluster, parsed."""
    state = _require_state(files)
    result = _run(files, [_bin("serve"), "status", "--address", state.dashboard_url])
    parsed: dict[str, Any] = yaml.safe_load(result.stdout) or {}
    return parsed


def wait_running(
    files: ClusterFiles, names: Sequence[str], timeout_s: float = DEPLOY_TIMEOUT_S
) -> dict[str, Any]:
    """Poll until every app in ``names`` is ``RUNNING``; an app that failed to deploy is an error."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = serve_status(files)
        apps = status.get("applications") or {}
        failed = {
            n: apps[n].get("message", "") for n in names if apps.get(n, {}).get("status") == "DEPLOY_FAILED"
        }
        if failed:
            raise ClusterError(f"apps failed to deploy: {failed}")
        if all(apps.get(n, {}).get("status") == "RUNNING" for n in names):
            return status
        if time.monotonic() > deadline:
            pending = {
                n: apps.get(n, {}).get("status") for n in names if apps.get(n, {}).get("status") != "RUNNING"
            }
            raise ClusterError(f"apps not RUNNING after {timeout_s:.0f}s: {pending}")
        time.sleep(2)


def describe_status(status: dict[str, Any]) -> str:
    """``make status``: one line per app, then one per deployment with its replicas by state."""
    lines = []
    for name, app in sorted((status.get("applications") or {}).items()):
        lines.append(f"{name:<20} {app.get('status', '?'):<14} {app.get('message') or ''}".rstrip())
        for deployment, info in sorted((app.get("deployments") or {}).items()):
            replicas = ", ".join(f"{k} {v}" for k, v in sorted((info.get("replica_states") or {}).items()))
            lines.append(f"  {deployment:<26} {info.get('status', '?'):<10} replicas: {replicas or 'none'}")
    return "\n".join(lines) if lines else "no applications"


def _stop_process(pid: int, timeout_s: float = 60) -> None:
    """SIGTERM the ``ray start --block`` process group (it stops the head's processes), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.5)


def down(files: ClusterFiles) -> None:
    """Shut Serve down and stop our Ray head; nothing to do when none is up."""
    state = read_state(files)
    if state is None:
        logger.info("no cluster is up")
        files.state.unlink(missing_ok=True)
        return
    command = [_bin("serve"), "shutdown", "--address", state.dashboard_url, "--yes"]
    result = _run(files, command, check=False)
    if result.returncode != 0:
        logger.warning("serve shutdown failed (%s); stopping the head anyway", result.stderr.strip()[-300:])
    _stop_process(state.pid)
    files.state.unlink(missing_ok=True)
    logger.info("cluster down (ray pid %d stopped)", state.pid)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m platform_core.cluster {up,deploy,status,down} --help``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="where the cluster's state lives"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "deploy"):
        command = sub.add_parser(name)
        command.add_argument("--config", type=Path, default=REPO_ROOT / DEFAULT_CONFIG)
        command.add_argument("--offline", action="store_true", help="scripted LLM + bundled sample upstream")
        command.add_argument("--no-wait", action="store_true", help="return once the config is submitted")
    sub.choices["up"].add_argument("--port", type=int, default=8000, help="HTTP port of the Serve proxy")
    sub.choices["up"].add_argument(
        "--metrics-port", type=int, default=DEFAULT_METRICS_PORT, help="Prometheus port of Ray's metrics"
    )
    sub.choices["up"].add_argument(
        "--num-cpus", type=float, default=max(8, 4 * (os.cpu_count() or 1)), help="logical CPUs of the head"
    )
    sub.add_parser("status")
    sub.add_parser("down")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    files = ClusterFiles(args.run_dir.resolve())
    try:
        if args.command == "up":
            state = up(files, args.port, args.num_cpus, args.metrics_port)
            deploy(files, args.config, offline=args.offline, wait=not args.no_wait)
            logger.info("serving on http://127.0.0.1:%d", state.http_port)
        elif args.command == "deploy":
            deploy(files, args.config, offline=args.offline, wait=not args.no_wait)
        elif args.command == "status":
            sys.stdout.write(describe_status(serve_status(files)) + "\n")
        else:
            down(files)
    except ClusterError as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
