"""The ``vllm`` backend: Ray Serve LLM (``ray.serve.llm.build_openai_app``) on GPUs.

``ray.serve.llm`` imports vLLM (and pyarrow) at import time, which the CPU install lacks, so the import
happens only inside :func:`build_vllm_app`. :func:`vllm_llm_config_kwargs` is plain data (field names
from ``ray/llm/_internal/serve/core/configs/llm_config.py`` of Ray 2.60) and testable anywhere.
"""

import logging
from typing import Any

from ray.serve import Application

from llm.config import LLMAppArgs

logger = logging.getLogger(__name__)

GPU_EXTRA_HINT = "install the gpu extra: uv sync --extra gpu (or make install-gpu)"


def vllm_llm_config_kwargs(args: LLMAppArgs) -> dict[str, Any]:
    """Keyword arguments of ``ray.serve.llm.LLMConfig`` for ``args`` (``engine_kwargs`` wins on overlap)."""
    engine_kwargs: dict[str, Any] = {
        "max_model_len": args.max_model_len,
        "gpu_memory_utilization": args.gpu_memory_utilization,
    }
    if args.enable_auto_tool_choice:
        engine_kwargs["enable_auto_tool_choice"] = True
        if args.tool_call_parser:
            engine_kwargs["tool_call_parser"] = args.tool_call_parser
    engine_kwargs.update(args.engine_kwargs)
    return {
        "model_loading_config": {
            "model_id": args.model_id,
            "model_source": args.model_source or args.model_id,
        },
        "accelerator_type": args.accelerator_type,
        "engine_kwargs": engine_kwargs,
        "deployment_config": {"autoscaling_config": args.sizing("vllm").autoscaling_config()},
        # Ray Serve LLM batches streamed tokens for 50 ms by default (Ray issue #59681).
        "experimental_configs": {"stream_batching_interval_ms": args.stream_batching_interval_ms},
    }


def build_vllm_app(args: LLMAppArgs) -> Application:
    """The OpenAI-compatible Ray Serve LLM app (router + ``LLMServer`` replicas) for ``args``."""
    try:
        from ray.serve.llm import LLMConfig, build_openai_app
    except ImportError as exc:
        raise RuntimeError(
            f"backend 'vllm' needs ray[llm] and vLLM, which are not importable here ({exc}); {GPU_EXTRA_HINT}"
        ) from exc
    llm_config = LLMConfig(**vllm_llm_config_kwargs(args))
    logger.info("vllm backend: model %s on %s", args.model_id, args.accelerator_type or "any GPU")
    return build_openai_app({"llm_configs": [llm_config]})
