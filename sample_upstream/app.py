"""The bundled sample upstream server: recorded weather, search and web responses for offline mode.

It stands in for the public internet (NWS, Open-Meteo, Brave Search, web pages), which this platform's
CI and many users' machines cannot reach. Every payload it serves is labelled as sample data.
"""

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, Field
from ray import serve
from ray.serve import Application

from platform_core.config_version import with_config_version
from platform_core.logs import route_into_serve_logs
from sample_upstream.weather import router as weather_router
from sample_upstream.web import router as web_router


def create_app(latency_ms: int = 0) -> FastAPI:
    """The ASGI app; usable without Ray (``uvicorn sample_upstream.app:create_app --factory``).

    ``latency_ms`` delays every answer but the health probe's: a slow upstream, for load and fault tests.
    """
    app = FastAPI(title="Sample upstream (offline sample data)")
    app.include_router(weather_router)
    app.include_router(web_router)

    if latency_ms:

        @app.middleware("http")
        async def delay(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            if request.url.path != "/health":
                await asyncio.sleep(latency_ms / 1000)
            return await call_next(request)

    @app.get("/health")
    async def health() -> dict[str, object]:
        return await with_config_version({"ready": True})

    return app


class SampleUpstreamReplica:
    """One replica serving :func:`create_app` behind the Serve proxy at ``/sample-upstream``."""

    def __init__(self, latency_ms: int = 0) -> None:
        route_into_serve_logs()
        self._app = create_app(latency_ms)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return self._app


# The decorators as calls: mypy ignores what a class decorator returns, and this is a Deployment.
SampleUpstream: serve.Deployment = serve.deployment(
    name="SampleUpstream", ray_actor_options={"num_cpus": 0.05}, max_ongoing_requests=100
)(serve.ingress()(SampleUpstreamReplica))
"""The ``SampleUpstream`` deployment; :func:`build_app` sets its replica count."""


class SampleUpstreamArgs(BaseModel):
    """Builder args of the sample upstream app (``args:`` in a Serve config)."""

    num_replicas: int = Field(default=1, ge=1)
    latency_ms: int = Field(
        default=0,
        ge=0,
        le=600_000,
        description="Delay of every answer (not of /health): a slow upstream, for load and fault tests.",
    )


def build_app(args: SampleUpstreamArgs) -> Application:
    """The sample upstream Serve app (``import_path: sample_upstream.app:build_app``)."""
    return SampleUpstream.options(num_replicas=args.num_replicas).bind(args.latency_ms)
