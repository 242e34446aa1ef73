"""The ``/llm`` Serve app: one OpenAI-compatible API (``/v1/models``, ``/v1/chat/completions``) in front
of a vLLM, upstream-proxy or scripted offline backend. The builder is ``llm.app:build_app``."""
