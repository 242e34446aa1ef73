"""The ``/llm`` app builder (``import_path: llm.app:build_app``): one OpenAI API, several backends.

Backends: ``vllm`` (GPU, Ray Serve LLM), ``upstream`` (proxy to an OpenAI-compatible URL), ``scripted``
(deterministic offline model) and ``auto`` for local configs: vllm if the Ray cluster has GPUs, else
upstream if a base URL is configured, else scripted; ``OFFLINE=1`` makes ``auto`` pick scripted. The
``LLM_BACKEND`` environment variable overrides the config's ``backend``. The choice is logged at WARNING
with its reason, since it decides whether answers come from a real model.
"""

import logging
from collections.abc import Callable

import ray
from ray.serve import Application

from llm.config import BACKENDS, LLMAppArgs
from llm.scripted.deployment import ScriptedLLM
from llm.upstream import UpstreamLLM
from llm.vllm_backend import build_vllm_app
from platform_core.settings import PlatformSettings, get_settings

logger = logging.getLogger(__name__)


def cluster_gpus() -> float:
    """GPUs in the Ray cluster this builder runs in (0 when Ray is not initialized here)."""
    if not ray.is_initialized():
        logger.warning("Ray is not initialized where the llm builder runs; assuming no GPUs")
        return 0.0
    cluster_resources: Callable[[], dict[str, float]] = ray.cluster_resources  # unannotated in Ray
    return float(cluster_resources().get("GPU", 0))


def upstream_base_url(args: LLMAppArgs, settings: PlatformSettings) -> str | None:
    """The upstream's base URL: the builder arg, else ``LLM_UPSTREAM_BASE_URL``; None when neither is set."""
    return args.upstream_base_url or settings.llm_upstream_base_url or None


def resolve_backend(
    args: LLMAppArgs, settings: PlatformSettings, gpus: Callable[[], float] = cluster_gpus
) -> tuple[str, str]:
    """The backend to build and why. ``gpus`` is only asked when ``auto`` has to decide on it."""
    if settings.llm_backend:
        requested, source = settings.llm_backend.strip().lower(), "LLM_BACKEND"
    else:
        requested, source = args.backend, "args.backend"
    if requested not in BACKENDS:
        raise ValueError(f"{source}={requested!r} is not a backend; choose one of {', '.join(BACKENDS)}")
    upstream = upstream_base_url(args, settings)
    if requested == "upstream" and not upstream:
        raise ValueError(
            "backend 'upstream' needs an OpenAI-compatible base URL: set args.upstream_base_url or the "
            "LLM_UPSTREAM_BASE_URL environment variable (e.g. https://api.openai.com/v1)"
        )
    if requested != "auto":
        return requested, f"{source}={requested}"
    if settings.offline:
        return "scripted", "backend auto and OFFLINE=1"
    count = gpus()
    if count > 0:
        return "vllm", f"backend auto and the Ray cluster has {count:g} GPU(s)"
    if upstream:
        return "upstream", f"backend auto, no GPUs in the Ray cluster, upstream configured: {upstream}"
    return "scripted", "backend auto, no GPUs in the Ray cluster and no LLM_UPSTREAM_BASE_URL configured"


def build_app(args: LLMAppArgs) -> Application:
    """The ``/llm`` Serve application for ``args`` (see the module docstring)."""
    settings = get_settings()
    backend, reason = resolve_backend(args, settings)
    logger.warning("LLM backend: %s (%s)", backend.upper(), reason)
    if backend == "vllm":
        return build_vllm_app(args)
    if backend == "upstream":
        base_url = upstream_base_url(args, settings)
        assert base_url is not None  # resolve_backend checked it
        api_key = args.upstream_api_key.get_secret_value() if args.upstream_api_key else None
        return UpstreamLLM.options(**args.deployment_options()).bind(
            base_url, api_key, args.upstream_model or settings.llm_upstream_model, args.request_timeout_s
        )
    logger.warning(
        "The /llm app serves %r, a deterministic offline model: answers quote tool results, "
        "they do not come from a real LLM",
        args.scripted_model_id,
    )
    return ScriptedLLM.options(**args.deployment_options()).bind(
        args.scripted_model_id, args.scripted_token_delay_ms
    )
