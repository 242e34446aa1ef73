"""An offline stack of its own for a bench run: ``serve run`` on a free loopback port, stopped afterwards.

The config is the checked-in one (``serve_multi_config.yaml`` by default) through the same transform as
``make run`` (:func:`platform_core.serve_config.for_local_run`), with the SQLite database in a temporary
directory, so a bench run shares nothing with a stack or a test run already on the machine. ``code_dir``
runs another checkout of the project (``git worktree`` or an unpacked archive) with this machine's
``.venv``: the way to measure the code before a change against the code after it.

:func:`one_process_stack` starts the same config in one process without Serve (:mod:`bench.one_process`),
the baseline of ``travel_ratio``. Both yield a :class:`RunningStack` with its ``cold_start_s``: from the
start command to every app of the config answering ``GET <route>/health`` ready.
"""

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from platform_core.cluster import free_port
from platform_core.serve_config import for_local_run, load_config

logger = logging.getLogger("bench.stack")

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 900.0
STOP_TIMEOUT_S = 90.0


def _ready(base_url: str, routes: tuple[str, ...]) -> bool:
    for route in routes:
        try:
            response = httpx.get(f"{base_url}{route}/health", timeout=10)
            if response.status_code != 200 or not response.json().get("ready"):
                return False
        except (httpx.HTTPError, ValueError):
            return False
    return True


@dataclass(frozen=True)
class RunningStack:
    """A started stack: where it answers, and how long it took to be ready."""

    base_url: str
    cold_start_s: float
    routes: tuple[str, ...]
    pid: int  # the process that started it (its Ray processes run below it)


def app_routes(config: dict[str, Any]) -> tuple[str, ...]:
    """The route prefix of every app of a Serve config."""
    return tuple(str(app["route_prefix"]) for app in config.get("applications", []))


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C first (``serve run`` then shuts down Serve and its Ray instance), then the process group."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        logger.warning("serve run did not stop on SIGINT; terminating its process group")
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def _started(
    command: list[str],
    *,
    code_dir: Path,
    env_vars: dict[str, str],
    workdir: Path,
    base_url: str,
    routes: tuple[str, ...],
    start_timeout_s: float,
) -> Iterator[RunningStack]:
    """Run ``command`` in its own process group until the block ends; yields once ``routes`` are ready."""
    log_path = workdir / "serve.log"
    logger.info("starting %s in %s on %s (log: %s)", " ".join(command[-3:]), code_dir, base_url, log_path)
    with log_path.open("wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=code_dir,
            env={**os.environ, **env_vars},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops nothing else
        )
        try:
            while not _ready(base_url, routes):
                if process.poll() is not None:
                    raise RuntimeError(f"{command[-2:]} exited ({process.returncode}); see {log_path}")
                if time.monotonic() - started > start_timeout_s:
                    raise TimeoutError(f"{routes} not ready after {start_timeout_s:.0f}s; see {log_path}")
                time.sleep(1)
            cold_start_s = round(time.monotonic() - started, 1)
            logger.info("stack ready on %s after %.1f s", base_url, cold_start_s)
            yield RunningStack(base_url, cold_start_s, routes, process.pid)
        finally:
            _stop(process)


def _prepare(config: str, code_dir: Path, port: int | None) -> tuple[dict[str, Any], Path, dict[str, str]]:
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    env_vars = {"PYTHONPATH": str(code_dir), "DATA_DIR": str(workdir / "data")}
    run_config = for_local_run(load_config(code_dir / config), port=port, offline=True, env=env_vars)
    return run_config, workdir, env_vars


@contextmanager
def offline_stack(
    config: str = "serve_multi_config.yaml",
    *,
    code_dir: Path = REPO_ROOT,
    port: int | None = None,
    ready_routes: tuple[str, ...] | None = None,
    start_timeout_s: float = START_TIMEOUT_S,
) -> Iterator[RunningStack]:
    """``serve run`` the offline stack of ``code_dir``; yields once ``ready_routes`` (default all) answer."""
    code_dir = code_dir.resolve()
    run_config, workdir, env_vars = _prepare(config, code_dir, port)
    config_path = workdir / Path(config).name
    config_path.write_text(yaml.safe_dump(run_config, sort_keys=False))
    serve = Path(sys.executable).parent / "serve"
    port = run_config["http_options"]["port"]
    with _started(
        [str(serve), "run", str(config_path)],
        code_dir=code_dir,
        env_vars=env_vars,
        workdir=workdir,
        base_url=f"http://127.0.0.1:{port}",
        routes=ready_routes or app_routes(run_config),
        start_timeout_s=start_timeout_s,
    ) as stack:
        yield stack


@contextmanager
def one_process_stack(
    config: str = "serve_multi_config.yaml",
    *,
    code_dir: Path = REPO_ROOT,
    port: int | None = None,
    start_timeout_s: float = START_TIMEOUT_S,
) -> Iterator[RunningStack]:
    """The same offline config in one process without Serve (:mod:`bench.one_process`), all apps ready."""
    code_dir = code_dir.resolve()
    run_config, workdir, env_vars = _prepare(config, code_dir, port)
    port = run_config["http_options"]["port"]
    skipped = ("/ui",)  # not part of any measured flow
    routes = tuple(r for r in app_routes(run_config) if r not in skipped)
    command = [
        sys.executable,
        "-m",
        "bench.one_process",
        "--config",
        str(code_dir / config),
        "--port",
        str(port),
    ]
    with _started(
        command,
        code_dir=code_dir,
        env_vars=env_vars,
        workdir=workdir,
        base_url=f"http://127.0.0.1:{port}",
        routes=routes,
        start_timeout_s=start_timeout_s,
    ) as stack:
        yield stack
