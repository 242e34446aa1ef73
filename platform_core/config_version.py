"""The version of the config an app serves, for its ``GET /health``: proof of what a roll-out applied.

``config_version`` is a short hash of the app's entry in the deployed Serve config as the Serve controller
holds it (import path, ``args``, ``runtime_env``, the ``deployments:`` overrides): the config this
replica's app was last deployed with. So after ``make deploy`` every app's ``/health`` shows the version of
the config just applied, whether Serve restarted its replicas (changed ``args``, ``runtime_env`` or
code: Serve's code version covers the first two) or updated them in place (replica counts, autoscaling
bounds, ``max_ongoing_requests`` and ``user_config`` under ``deployments:``); an app whose entry did not
change keeps its version, and Serve leaves its replicas alone.

Outside a Serve replica (tests, ``uvicorn``, :mod:`bench.one_process`), or for an app deployed without a
config (``serve.run(app)``), the version is ``None``. The controller is asked at most every few seconds.
"""

import asyncio
import hashlib
import json
import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

CONFIG_VERSION_KEY = "config_version"
CACHE_S = 5.0
CONTROLLER_TIMEOUT_S = 5.0

_cached: tuple[float, str | None] | None = None  # (when, version): one replica per process


def hash_app_config(app_config: dict[str, Any]) -> str:
    """The version of one app's config entry (a Serve config's ``applications[i]``, as JSON)."""
    encoded = json.dumps(app_config, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


async def _ask_controller() -> str | None:
    # Imported here: Ray is only needed inside a replica.
    import ray
    from ray import serve
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:
        app_name = serve.get_replica_context().app_name
    except Exception:  # not in a replica (RayServeException)
        return None
    controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    configs: dict[str, Any] = await asyncio.wait_for(
        controller.get_app_configs.remote(), CONTROLLER_TIMEOUT_S
    )
    config = configs.get(app_name)
    if config is None:
        return None
    return hash_app_config(config.model_dump(mode="json", exclude_unset=True))


async def config_version() -> str | None:
    """This replica's app's config version (cached for a few seconds); ``None`` outside Serve."""
    global _cached
    now = time.monotonic()
    if _cached is not None and now - _cached[0] < CACHE_S:
        return _cached[1]
    try:
        version = await _ask_controller()
    except Exception as exc:  # the controller restarting, a timeout: health still answers
        logger.warning("config version unavailable: %s", exc)
        version = _cached[1] if _cached is not None else None
    _cached = (now, version)
    return version


async def with_config_version(body: dict[str, Any]) -> dict[str, Any]:
    """A ``GET /health`` body with this replica's ``config_version`` added."""
    return {**body, CONFIG_VERSION_KEY: await config_version()}
