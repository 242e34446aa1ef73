"""The ``vllm`` backend: Ray Serve LLM (``ray.serve.llm``) on GPUs.

``ray.serve.llm`` imports vLLM (and pyarrow) at import time, which the CPU install lacks, so the import
happens only inside :func:`build_vllm_app` (and :mod:`llm.vllm_ingress`, imported from there). What can
be decided without vLLM lives here as plain data and functions, testable anywhere:
:func:`vllm_llm_config_kwargs` (field names from ``ray/llm/_internal/serve/core/configs/llm_config.py`` of
Ray 2.60), :func:`placement_summary` (what gets logged) and :func:`vllm_health` (``GET /llm/health``).
"""

import logging
import os
from typing import Any

from ray.serve import Application

from llm.config import LLMAppArgs

logger = logging.getLogger(__name__)

GPU_EXTRA_HINT = "install the gpu extra: uv sync --extra gpu (or make install-gpu)"
# Ray Serve LLM's direct streaming mode makes the LLMServer itself the ingress (vLLM's own FastAPI app,
# which has its own GET /health); our ingress with /health only exists in the default mode.
DIRECT_STREAMING_ENV = "RAY_SERVE_LLM_ENABLE_DIRECT_STREAMING"


def vllm_llm_config_kwargs(args: LLMAppArgs) -> dict[str, Any]:
    """Keyword arguments of ``ray.serve.llm.LLMConfig`` for ``args`` (``engine_kwargs`` wins on overlap).

    ``accelerator_type`` is left out unless configured: Ray then asks for any GPU, whereas a named type the
    cluster lacks leaves the replica pending forever.
    """
    engine_kwargs: dict[str, Any] = {
        "max_model_len": args.max_model_len,
        "gpu_memory_utilization": args.gpu_memory_utilization,
    }
    if args.enable_auto_tool_choice:
        engine_kwargs["enable_auto_tool_choice"] = True
        if args.tool_call_parser:
            engine_kwargs["tool_call_parser"] = args.tool_call_parser
    engine_kwargs.update(args.engine_kwargs)
    kwargs: dict[str, Any] = {
        "model_loading_config": {
            "model_id": args.model_id,
            "model_source": args.model_source or args.model_id,
        },
        "engine_kwargs": engine_kwargs,
        "deployment_config": {"autoscaling_config": args.sizing("vllm").autoscaling_config()},
        # Ray Serve LLM batches streamed tokens for 50 ms by default (Ray issue #59681).
        "experimental_configs": {"stream_batching_interval_ms": args.stream_batching_interval_ms},
    }
    if args.accelerator_type:
        kwargs["accelerator_type"] = args.accelerator_type
    return kwargs


def placement_summary(kwargs: dict[str, Any]) -> str:
    """One line saying which GPUs and memory settings ``LLMConfig(**kwargs)`` asks for, for the build log."""
    engine = kwargs["engine_kwargs"]
    tensor = int(engine.get("tensor_parallel_size", 1))
    pipeline = int(engine.get("pipeline_parallel_size", 1))
    accelerator = kwargs.get("accelerator_type")
    gpu = f"accelerator_type {accelerator}" if accelerator else "any GPU (no accelerator_type)"
    autoscaling = kwargs["deployment_config"]["autoscaling_config"]
    return (
        f"model {kwargs['model_loading_config']['model_id']} "
        f"(source {kwargs['model_loading_config']['model_source']}) on {gpu}, "
        f"{tensor * pipeline} GPU(s) per replica (tensor_parallel_size {tensor}, "
        f"pipeline_parallel_size {pipeline}), gpu_memory_utilization {engine.get('gpu_memory_utilization')}, "
        f"max_model_len {engine.get('max_model_len')}, "
        f"replicas {autoscaling['min_replicas']}..{autoscaling['max_replicas']}"
    )


def build_vllm_app(args: LLMAppArgs) -> Application:
    """The OpenAI-compatible Ray Serve LLM app (router with ``/health`` + ``LLMServer`` replicas)."""
    kwargs = vllm_llm_config_kwargs(args)
    logger.info("vllm backend: %s", placement_summary(kwargs))
    try:
        from ray.serve.llm import LLMConfig, build_openai_app
    except ImportError as exc:
        raise RuntimeError(
            f"backend 'vllm' needs ray[llm] and vLLM, which are not importable here ({exc}); {GPU_EXTRA_HINT}"
        ) from exc
    llm_config = LLMConfig(**kwargs)
    if os.environ.get(DIRECT_STREAMING_ENV) == "1":
        logger.warning(
            "%s=1: the LLMServer is the ingress, so GET /llm/health is vLLM's own (an empty 200 once the "
            "engine runs), not the platform's JSON readiness answer",
            DIRECT_STREAMING_ENV,
        )
        return build_openai_app({"llm_configs": [llm_config]})
    from llm.vllm_ingress import build_openai_app_with_health

    return build_openai_app_with_health(llm_config)
