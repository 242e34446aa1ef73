"""Prepare a Serve config file for a local run: port, offline mode, the sample upstream server.

``make run`` and the integration tests both go through :func:`for_local_run`, so what the tests deploy is
the checked-in config with exactly these documented changes:

- ``--port N`` sets ``http_options.port`` and ``SERVE_BASE_URL=http://127.0.0.1:N`` for every app, so
  services reach each other through the proxy they are actually served on;
- ``--offline`` sets ``OFFLINE=1`` for every app (scripted LLM, tool servers on sample data) and adds the
  bundled sample upstream server at ``/sample-upstream`` when the config does not already deploy it.
"""

import argparse
import copy
import logging
import sys
from pathlib import Path
from typing import Any

import yaml
from ray.serve.schema import ServeDeploySchema

from platform_core.settings import SAMPLE_UPSTREAM_ROUTE

logger = logging.getLogger(__name__)

SAMPLE_UPSTREAM_APP: dict[str, Any] = {
    "name": "sample_upstream",
    "route_prefix": SAMPLE_UPSTREAM_ROUTE,
    "import_path": "sample_upstream.app:build_app",
    "args": {},
}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a Serve config YAML file and check it against Ray's ``ServeDeploySchema``."""
    with open(path) as f:
        config: dict[str, Any] = yaml.safe_load(f)
    ServeDeploySchema.model_validate(config)
    return config


def set_app_env(app: dict[str, Any], env: dict[str, str]) -> None:
    """Merge ``env`` into an app's ``runtime_env.env_vars`` (these values win)."""
    runtime_env = app.setdefault("runtime_env", {})
    runtime_env.setdefault("env_vars", {}).update(env)


def for_local_run(
    config: dict[str, Any],
    *,
    port: int | None = None,
    offline: bool = False,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A copy of ``config`` ready for ``serve run`` on this machine (see the module docstring)."""
    config = copy.deepcopy(config)
    app_env = dict(env or {})
    if port is not None:
        config.setdefault("http_options", {})["port"] = port
        host = config["http_options"].get("host", "127.0.0.1")
        reach = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        app_env["SERVE_BASE_URL"] = f"http://{reach}:{port}"
    apps: list[dict[str, Any]] = config.setdefault("applications", [])
    if offline:
        app_env["OFFLINE"] = "1"
        if not any(app.get("route_prefix") == SAMPLE_UPSTREAM_ROUTE for app in apps):
            apps.insert(0, copy.deepcopy(SAMPLE_UPSTREAM_APP))
    for app in apps:
        set_app_env(app, app_env)
    ServeDeploySchema.model_validate(config)
    return config


def main(argv: list[str] | None = None) -> int:
    """``make run``: print the config ready for a local run, or write it to ``--output``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="Serve config YAML (e.g. serve_config.yaml)")
    parser.add_argument("--port", type=int, default=None, help="HTTP port of the Serve proxy")
    parser.add_argument("--offline", action="store_true", help="scripted LLM + bundled sample upstream")
    parser.add_argument("-o", "--output", type=Path, default=None, help="write here instead of stdout")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = for_local_run(load_config(args.config), port=args.port, offline=args.offline)
    text = yaml.safe_dump(config, sort_keys=False)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        logger.info(
            "wrote %s (%d apps%s)",
            args.output,
            len(config["applications"]),
            ", offline" if args.offline else "",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
