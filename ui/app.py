"""The web UI as a Serve application: a FastAPI app with the Gradio page mounted at its root.

Deployed at a route prefix (``/ui``): the Serve proxy passes ``root_path=/ui`` and Gradio builds its
asset and API URLs from it. Builder: ``ui.app:build_app`` with :class:`ui.config.UIArgs`.

The app is built inside the replica (``@serve.ingress()`` + ``__serve_build_asgi_app__``): Gradio
Blocks hold locks, queues and an HTTP client that must not be deep-copied or pickled.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import gradio as gr
from fastapi import FastAPI
from ray import serve
from ray.serve import Application

from identity import OIDCSettings
from platform_core.config_version import with_config_version
from platform_core.logs import route_into_serve_logs
from ui.blocks import CSS, build_blocks
from ui.client import AgentClient
from ui.config import UIArgs, get_ui_settings
from ui.sign_in import OIDCSignIn

logger = logging.getLogger(__name__)


def create_ui_app(args: UIArgs) -> FastAPI:
    """The UI's ASGI app (usable without Ray, e.g. under uvicorn): the page at ``/``, ``GET /health``."""
    agent_urls = args.agent_urls()
    settings = get_ui_settings()
    sign_in = (
        OIDCSignIn(settings, OIDCSettings(), public_url=args.public_url())
        if settings.sign_in_enabled
        else None
    )
    client = AgentClient(
        token=args.token(),
        connect_timeout_s=args.connect_timeout_s,
        read_timeout_s=args.read_timeout_s,
        sign_in=sign_in is not None,
    )
    blocks = build_blocks(
        agent_urls,
        client,
        title=args.title,
        concurrency_limit=args.concurrency_limit,
        sign_in=sign_in is not None,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.aclose()
            if sign_in is not None:
                await sign_in.aclose()

    app = FastAPI(title=args.title, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    if sign_in is not None:
        sign_in.install(app)

    @app.get("/health")
    async def health() -> dict[str, object]:
        return await with_config_version({"ready": True, "agents": agent_urls})

    logger.info("UI for agents %s", ", ".join(f"{name}={url}" for name, url in agent_urls.items()))
    if sign_in is not None:
        logger.info("UI sign-in with OIDC at %s (client %s)", sign_in.issuer, sign_in.client_id)
    # Gradio's untyped @document() decorator makes mount_gradio_app Any; it returns ``app``.
    mounted: FastAPI = gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        root_path=args.root_path,
        footer_links=[],
        run_history=False,
        theme=gr.themes.Soft(
            font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
        ),
        css=CSS,
    )
    return mounted


@serve.ingress()
class UIDeployment:
    """The UI's only replica (Gradio's event queue lives in process); :func:`build_app` deploys it."""

    def __init__(self, args: UIArgs) -> None:
        route_into_serve_logs()
        self._app = create_ui_app(args)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return self._app


def build_app(args: UIArgs) -> Application:
    """Serve builder of the web UI (``import_path: ui.app:build_app``)."""
    # Applied here, not as a class decorator: mypy keeps a decorated class's type, not the Deployment.
    deployment = serve.deployment(
        num_replicas=1,
        ray_actor_options={"num_cpus": args.num_cpus},
        max_ongoing_requests=args.max_ongoing_requests,
    )(UIDeployment)
    return deployment.bind(args)
