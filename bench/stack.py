"""An offline stack of its own for a bench run: ``serve run`` on a free loopback port, stopped afterwards.

The config is the checked-in one (``serve_multi_config.yaml`` by default) through the same transform as
``make run`` (:func:`platform_core.serve_config.for_local_run`), with the SQLite database in a temporary
directory, so a bench run shares nothing with a stack or a test run already on the machine. ``code_dir``
runs another checkout of the project (``git worktree`` or an unpacked archive) with this machine's
``.venv``: the way to measure the code before a change against the code after it.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

from platform_core.serve_config import for_local_run, load_config

logger = logging.getLogger("bench.stack")

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 900.0
STOP_TIMEOUT_S = 90.0


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ready(base_url: str, routes: tuple[str, ...]) -> bool:
    for route in routes:
        try:
            response = httpx.get(f"{base_url}{route}/health", timeout=10)
            if response.status_code != 200 or not response.json().get("ready"):
                return False
        except (httpx.HTTPError, ValueError):
            return False
    return True


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
def offline_stack(
    config: str = "serve_multi_config.yaml",
    *,
    code_dir: Path = REPO_ROOT,
    port: int | None = None,
    ready_routes: tuple[str, ...] = ("/weather-agent",),
    start_timeout_s: float = START_TIMEOUT_S,
) -> Iterator[str]:
    """Start the offline stack of ``code_dir``; yields its base URL once ``ready_routes`` are ready."""
    code_dir = code_dir.resolve()
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    env_vars = {"PYTHONPATH": str(code_dir), "DATA_DIR": str(workdir / "data")}
    run_config = for_local_run(load_config(code_dir / config), port=port, offline=True, env=env_vars)
    config_path = workdir / Path(config).name
    config_path.write_text(yaml.safe_dump(run_config, sort_keys=False))
    log_path = workdir / "serve.log"
    serve = Path(sys.executable).parent / "serve"
    base_url = f"http://127.0.0.1:{port}"
    logger.info("starting %s of %s on %s (log: %s)", config, code_dir, base_url, log_path)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(serve), "run", str(config_path)],
            cwd=code_dir,
            env={**os.environ, **env_vars},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops nothing else
        )
        try:
            deadline = time.monotonic() + start_timeout_s
            while not _ready(base_url, ready_routes):
                if process.poll() is not None:
                    raise RuntimeError(f"serve run exited ({process.returncode}); see {log_path}")
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{ready_routes} not ready after {start_timeout_s:.0f}s; see {log_path}"
                    )
                time.sleep(2)
            logger.info("stack ready on %s", base_url)
            yield base_url
        finally:
            _stop(process)
