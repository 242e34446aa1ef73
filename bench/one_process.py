"""Every app of a Serve config in one process, without Serve: the baseline of ``travel_ratio``.

Each app is built exactly as its Serve replica builds it (the config's builder with its typed args, then
the replica class's constructor and ``__serve_build_asgi_app__``) and mounted at its route prefix of one
Starlette app, served by one uvicorn worker on a loopback port. The agents, prompts, tools, protocols
(MCP, A2A, SSE, the OpenAI API of the scripted model) and the database are the same as on the Serve
stack; what is missing is what Serve adds: the proxy, the replica processes and the hops between them.
Calls between apps still go over loopback HTTP to this one process (``SERVE_BASE_URL`` points here).

    .venv/bin/python -m bench.one_process --config serve_multi_config.yaml --port 8100

Every app's ``runtime_env.env_vars`` become this process's environment (they must agree); an app whose
deployment is not built by a replica class with ``__serve_build_asgi_app__`` is refused.
"""

import argparse
import asyncio
import importlib
import inspect
import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import uvicorn
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

from platform_core.serve_config import for_local_run, load_config

logger = logging.getLogger("bench.one_process")


def config_env(config: dict[str, Any]) -> dict[str, str]:
    """The env vars of every app of ``config``, merged; apps that disagree on a value are an error."""
    merged: dict[str, str] = {}
    for app in config.get("applications", []):
        for key, value in app.get("runtime_env", {}).get("env_vars", {}).items():
            if merged.setdefault(key, str(value)) != str(value):
                raise ValueError(f"apps disagree on {key}: {merged[key]!r} vs {value!r}")
    return merged


def build_asgi_app(app: dict[str, Any]) -> ASGIApp:
    """The ASGI app one Serve replica of the config entry ``app`` would serve, built in this process."""
    module_name, _, attr = app["import_path"].partition(":")
    builder = getattr(importlib.import_module(module_name), attr)
    raw_args = app.get("args") or {}
    parameters = list(inspect.signature(builder).parameters.values())
    annotation = parameters[0].annotation if parameters else None
    if parameters and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        application = builder(annotation.model_validate(raw_args))
    else:
        application = builder(raw_args) if parameters else builder()
    deployment = application._bound_deployment  # the public Application API has no accessor
    # The user's replica class inside Ray's ingress wrapper (which takes the user class's name and module).
    replica_class = next(
        (c for c in deployment.func_or_class.__mro__ if "__serve_build_asgi_app__" in vars(c)), None
    )
    if replica_class is None:
        raise TypeError(
            f"{app['name']}: its replica class does not build its app in __serve_build_asgi_app__"
        )
    replica = replica_class(*deployment.init_args, **deployment.init_kwargs)
    asgi_app: ASGIApp = replica.__serve_build_asgi_app__()
    return asgi_app


def build_one_process_app(config: dict[str, Any]) -> Starlette:
    """Every app of ``config`` mounted at its route prefix; their lifespans run in this app's."""
    apps = {app["route_prefix"]: build_asgi_app(app) for app in config.get("applications", [])}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Mounted apps' lifespans do not run by themselves.
        async with AsyncExitStack() as stack:
            for prefix, asgi_app in apps.items():
                router = getattr(asgi_app, "router", None)
                if router is not None:
                    await stack.enter_async_context(router.lifespan_context(asgi_app))
                    logger.info("started %s", prefix)
            yield

    # Longest prefix first, so /a2a-weather is not taken by a shorter mount.
    routes = [Mount(prefix, app=apps[prefix]) for prefix in sorted(apps, key=len, reverse=True)]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    """Command line: ``python -m bench.one_process --help``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", default="serve_multi_config.yaml")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--offline", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--skip", action="append", default=["/ui"], help="route prefixes not to mount")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = for_local_run(load_config(args.config), port=args.port, offline=args.offline)
    config["applications"] = [a for a in config["applications"] if a["route_prefix"] not in args.skip]
    os.environ.update(config_env(config))
    app = build_one_process_app(config)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning"))
    logger.info("one process serving %d apps on http://127.0.0.1:%d", len(config["applications"]), args.port)
    asyncio.run(server.serve())


if __name__ == "__main__":
    main()
