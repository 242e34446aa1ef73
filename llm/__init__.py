"""The ``/llm`` Serve app: one OpenAI-compatible API in front of a vLLM, upstream-proxy or scripted model.

The API is ``/v1/models``, ``/v1/chat/completions`` and ``/health``. This face holds the app's
configuration only; the builder is ``llm.app:build_app`` (import it from there: it loads Ray Serve).

- :mod:`llm.app`: the builder and the backend choice (``auto``: vllm, upstream or scripted);
- :mod:`llm.config`: :class:`LLMAppArgs`, the builder args of every backend;
- :mod:`llm.upstream`, :mod:`llm.vllm_backend` (with :mod:`llm.vllm_ingress` and :mod:`llm.vllm_health`),
  :mod:`llm.scripted`: the backends (their errors in the OpenAI shape: :mod:`platform_core.openai_errors`).
"""

from llm.config import BACKENDS, Backend, LLMAppArgs

__all__ = [
    "BACKENDS",
    "Backend",
    "LLMAppArgs",
]
