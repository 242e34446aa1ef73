"""The agents behind the OpenAI Chat Completions API (``/openai``): any OpenAI client or chat UI can use them.

- :mod:`.wire`: the request, and the conversation in it (history + the user's request);
- :mod:`.relay`: a run's ``/chat`` events as OpenAI completions and chunks (tool steps kept);
- :mod:`.app`: the app and its Serve builder, ``agent_runtime.openai_api.app:build_app``.
"""

from agent_runtime.openai_api.app import OpenAIAgentsArgs, build_app, create_openai_app

__all__ = ["OpenAIAgentsArgs", "build_app", "create_openai_app"]
