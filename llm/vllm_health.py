"""Readiness of the vLLM app (``GET /llm/health``), apart from the ingress so it is testable without vLLM.

:mod:`llm.vllm_ingress` (which needs ``ray.serve.llm``) serves it; the tests call it with stand-in probes.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import JSONResponse

from platform_core.config_version import with_config_version

# How long /health waits for an LLMServer replica to answer; a replica still loading weights answers
# nothing, so the probe times out and /health says 503 instead of hanging with the request queued.
HEALTH_PROBE_TIMEOUT_S = 5.0

HealthProbe = Callable[[], Awaitable[object]]


async def vllm_health(
    model_id: str, probe: HealthProbe, timeout_s: float = HEALTH_PROBE_TIMEOUT_S
) -> JSONResponse:
    """``GET /llm/health`` of the vLLM app: 200 once an ``LLMServer`` replica answers ``probe``, else 503.

    The router's ``/v1/models`` lists the configured model as soon as the router is up, while the engine may
    still be loading weights or waiting for a GPU, so readiness asks a model replica itself.
    """
    body: dict[str, Any] = await with_config_version({"ready": False, "backend": "vllm", "model": model_id})
    try:
        await asyncio.wait_for(probe(), timeout_s)
    except TimeoutError:
        body["reason"] = (
            f"no replica of {model_id} answered within {timeout_s:g}s: the engine is loading, "
            "or waiting for a GPU it can be placed on"
        )
        return JSONResponse(body, status_code=503)
    except Exception as exc:  # a failing engine health check, a dead replica: not ready, with the reason
        body["reason"] = f"the engine health check of {model_id} failed: {exc!r}"
        return JSONResponse(body, status_code=503)
    body["ready"] = True
    return JSONResponse(body)
