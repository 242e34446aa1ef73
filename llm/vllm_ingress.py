"""Ray Serve LLM's OpenAI router plus ``GET /health``; imported only where ``ray.serve.llm`` (vLLM) is.

``ray.serve.llm.build_openai_app`` (Ray 2.60) always routes its ingress with Ray's fixed endpoint map, which
has no health route, and offers no hook to add one. So :func:`build_openai_app_with_health` does what that
builder does in its default (not direct streaming) mode: one ``LLMServer`` deployment per config
(``build_llm_deployment``), model cards, the ingress's own deployment options, and
``make_fastapi_ingress`` (public API, ``ray.serve.llm.ingress``) over a subclass of ``OpenAiIngress``,
with Ray's ``DEFAULT_ENDPOINTS`` plus ``/health``, on Ray's app behind the ``llm`` scope
(:func:`llm.access.guard_llm_app`). The readiness logic is
:func:`llm.vllm_health.vllm_health`.
"""

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from ray import serve
from ray.llm._internal.serve.core.configs.openai_api_models import to_model_metadata
from ray.llm._internal.serve.core.ingress.ingress import DEFAULT_ENDPOINTS, init
from ray.serve import Application
from ray.serve.handle import DeploymentHandle
from ray.serve.llm import LLMConfig, build_llm_deployment
from ray.serve.llm.ingress import OpenAiIngress, make_fastapi_ingress

from llm.access import guard_llm_app
from llm.vllm_health import vllm_health
from platform_core.config_version import with_config_version

ENDPOINTS: dict[str, Callable[[FastAPI], Callable[..., Any]]] = {
    **DEFAULT_ENDPOINTS,
    "health": lambda app: app.get("/health", response_model=None),
}


class OpenAiIngressWithHealth(OpenAiIngress):
    """Ray's OpenAI router, which also answers ``GET /health`` by asking each model's ``LLMServer``."""

    def __init__(
        self, llm_deployments: dict[str, DeploymentHandle[Any]], model_cards: dict[str, Any], **kwargs: Any
    ) -> None:
        super().__init__(llm_deployments, model_cards, **kwargs)
        self._servers = dict(llm_deployments)

    async def health(self) -> JSONResponse:
        """``GET /health``: ready once every model's ``LLMServer`` answers its health check in time."""
        body = await with_config_version({"ready": False, "backend": "vllm", "reason": "no model configured"})
        response = JSONResponse(body, 503)
        for model_id, server in self._servers.items():

            async def probe(server: DeploymentHandle[Any] = server) -> None:
                call = server.check_health.remote()
                try:
                    await call
                except asyncio.CancelledError:  # the /health timeout: drop the queued call too
                    cancel: Callable[[], None] = call.cancel  # unannotated in Ray
                    cancel()
                    raise

            response = await vllm_health(model_id, probe)
            if response.status_code != 200:
                return response
        return response


def build_openai_app_with_health(llm_config: LLMConfig) -> Application:
    """``build_openai_app({"llm_configs": [llm_config]})`` with ``/health`` on the router."""
    model_id = llm_config.model_id
    server = build_llm_deployment(llm_config)
    options = OpenAiIngressWithHealth.get_deployment_options([llm_config])
    # Ray's own FastAPI app (its CORS and error handling), behind the llm scope like every backend.
    app = guard_llm_app(init())
    ingress_cls = make_fastapi_ingress(OpenAiIngressWithHealth, endpoint_map=ENDPOINTS, app=app)
    return serve.deployment(**options)(ingress_cls).bind(
        llm_deployments={model_id: server},
        model_cards={model_id: to_model_metadata(model_id, llm_config)},
        lora_paths={},
    )
