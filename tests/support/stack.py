"""A real Ray Serve stack on loopback for integration tests, deployed like ``serve run`` deploys.

One Ray cluster per test session (``ray.init`` costs 20-35 s on a 2-core machine). Serve replaces the
whole set of applications on every deploy, so :class:`ServeStack` keeps the union of everything the
tests asked for and redeploys that; apps whose config did not change keep running untouched.
"""

import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import ray
from ray import serve
from ray.serve._private import api as serve_private_api
from ray.serve._private.constants import SERVE_NAMESPACE
from ray.serve.schema import ApplicationStatus, ServeDeploySchema

from platform_core.serve_config import for_local_run, load_config
from protocols.events import ChatEvent, parse_sse_lines
from tests.support.paths import REPO_ROOT
from tests.support.servers import free_port

logger = logging.getLogger(__name__)

ROOT = REPO_ROOT
TEST_PORT = int(os.environ.get("TEST_SERVE_PORT", "18000"))
BASE_URL = f"http://127.0.0.1:{TEST_PORT}"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_reachable() -> bool:
    """Whether the machine's PostgreSQL answers (tests on it skip with a reason where it does not)."""
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
        return True
    except OSError:
        return False


class DeployFailed(RuntimeError):
    pass


class ServeStack:
    """The test session's Serve instance on ``127.0.0.1:TEST_PORT``."""

    def __init__(self, port: int = TEST_PORT) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.apps: dict[str, dict[str, Any]] = {}
        self.logging_config: dict[str, Any] = {}  # the configs' own (JSON log files), once one is deployed
        self.metrics_url = ""
        self._client = None

    def start(self) -> None:
        # Logical CPUs: the configs use fractional CPUs sized for a 2-core box; 8 leaves room for the
        # test-only apps and for replicas that autoscaling adds.
        metrics_port = free_port()
        ray.init(
            num_cpus=8,
            namespace=SERVE_NAMESPACE,
            include_dashboard=False,
            object_store_memory=256 * 1024**2,
            log_to_driver=False,
            _metrics_export_port=metrics_port,  # as make run's METRICS_PORT
        )
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self._client = serve_private_api.serve_start(
            http_options={"host": "127.0.0.1", "port": self.port},
        )

    def stop(self) -> None:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()

    def local_config(self, path: str | Path, *, offline: bool = True) -> dict[str, Any]:
        """A checked-in config file made ready for this stack (the same transform ``make run`` uses)."""
        return for_local_run(
            load_config(ROOT / path),
            port=self.port,
            offline=offline,
            env={"PYTHONPATH": str(ROOT)},  # lets Ray workers import test-only apps under tests/
        )

    def deploy(self, config: dict[str, Any], *, timeout_s: float = 420) -> None:
        """Deploy (or update) the config's applications next to the ones already running."""
        for app in config["applications"]:
            self.apps[app["name"]] = app
        self.logging_config = config.get("logging_config", self.logging_config)
        self._apply(timeout_s, waiting_for=[app["name"] for app in config["applications"]])

    def remove(self, *names: str, timeout_s: float = 120) -> None:
        """Delete applications and wait until Serve no longer lists them."""
        for name in names:
            self.apps.pop(name, None)
        self._apply(timeout_s, waiting_for=[])
        deadline = time.monotonic() + timeout_s
        while remaining := set(names) & set(serve.status().applications):
            if time.monotonic() > deadline:
                raise DeployFailed(f"apps still present after {timeout_s:.0f}s: {sorted(remaining)}")
            time.sleep(0.5)

    def _apply(self, timeout_s: float, waiting_for: list[str]) -> None:
        schema = ServeDeploySchema.model_validate(
            {
                "proxy_location": "HeadOnly",
                "http_options": {"host": "127.0.0.1", "port": self.port},
                "logging_config": self.logging_config,
                "applications": list(self.apps.values()),
            }
        )
        self._client.deploy_apps(schema, _blocking=False)
        self.wait_running(waiting_for, timeout_s=timeout_s)

    def wait_running(self, names: list[str], *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(names)
        while pending:
            statuses = serve.status().applications
            for name in list(pending):
                app = statuses.get(name)
                if app is None:
                    continue
                if app.status == ApplicationStatus.RUNNING:
                    pending.discard(name)
                elif app.status == ApplicationStatus.DEPLOY_FAILED:
                    raise DeployFailed(f"app {name!r} failed to deploy: {app.message}")
            if pending and time.monotonic() > deadline:
                detail = {n: (statuses[n].status, statuses[n].message) for n in pending if n in statuses}
                raise DeployFailed(f"apps not RUNNING after {timeout_s:.0f}s: {sorted(pending)} {detail}")
            if pending:
                time.sleep(1)

    def wait_ready(self, route: str, *, timeout_s: float = 180) -> dict[str, Any]:
        """Poll ``{route}/health`` until it answers ``{"ready": true}``; returns that body."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{self.base_url}{route}/health", timeout=10)
                last = (response.status_code, response.text[:300])
                if response.status_code == 200 and response.json().get("ready"):
                    return response.json()
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(1)
        raise TimeoutError(f"{route}/health not ready after {timeout_s:.0f}s; last answer: {last}")


def chat(
    stack: ServeStack, route: str, body: dict[str, Any], timeout: float = 180
) -> tuple[httpx.Response, list[ChatEvent]]:
    """One ``POST {route}/chat`` through the stack's proxy: the response and its parsed events."""
    with httpx.stream("POST", f"{stack.base_url}{route}/chat", json=body, timeout=timeout) as response:
        lines = list(response.iter_lines())
    events = parse_sse_lines(lines) if response.status_code == 200 else []
    return response, events


def health(base_url: str, route: str) -> dict[str, Any]:
    """The body of ``GET {route}/health`` (whatever its status)."""
    body: dict[str, Any] = httpx.get(f"{base_url}{route}/health", timeout=30).json()
    return body


def replica_actors(app_name: str) -> list[str]:
    """The actor names of the app's Serve replicas alive now (``ray.get_actor(name, namespace="serve")``)."""
    return [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith(f"SERVE_REPLICA::{app_name}#")
    ]


def weather_replica(base_url: str) -> str:
    """The ``X-Replica-Id`` of the weather agent replica that answers one chat."""
    response = httpx.post(
        f"{base_url}/weather-agent/chat", json={"user_request": "Weather in Paris?"}, timeout=120
    )
    assert response.status_code == 200, response.text
    return response.headers["x-replica-id"]


@contextmanager
def deployed_over(
    stack: ServeStack, config: dict[str, Any], ready_routes: Iterable[str], *, timeout_s: float = 900
) -> Iterator[ServeStack]:
    """``config`` deployed over what runs now, until the block ends; then the earlier apps come back.

    For a whole config with other environment variables (auth on, an exporter): every app restarts,
    and again at the end. ``ready_routes`` are waited for before the block runs.
    """
    names = [app["name"] for app in config["applications"]]
    original = {name: stack.apps[name] for name in names if name in stack.apps}
    stack.deploy(config, timeout_s=timeout_s)
    for route in ready_routes:
        stack.wait_ready(route)
    try:
        yield stack
    finally:
        if original:
            stack.deploy({"applications": list(original.values())}, timeout_s=timeout_s)
        if added := [name for name in names if name not in original]:
            stack.remove(*added)


def scrape_metric(stack: ServeStack, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` (as exported, ``ray_`` prefix included) with those labels."""
    from prometheus_client.parser import text_string_to_metric_families

    body = httpx.get(stack.metrics_url, timeout=30).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def serve_log_records(app: str) -> list[dict[str, Any]]:
    """The JSON lines of every replica log file of Serve app ``app`` in this Ray session."""
    import json

    logs_dir = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    records = []
    for path in sorted(logs_dir.glob(f"replica_{app}_*.log")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return records
