"""The scripted backend: a deterministic offline model behind the OpenAI Chat Completions API.

``server`` is the HTTP layer, ``completion`` turns a decision into a completion or stream chunks,
``policy`` decides (with ``tools``, ``arguments``, ``facts``, ``answer``, ``text``, ``lexicon``).
The Serve deployment is ``llm.scripted.deployment:ScriptedLLM`` (import it from there: it loads Ray).

- :func:`create_app`: the model's OpenAI-compatible ASGI app, usable without Ray;
- :func:`generate_reply`: the model as a function, a validated request in, a :class:`Reply` out.
"""

from llm.scripted.completion import Reply, generate_reply
from llm.scripted.protocol import ChatCompletionRequest
from llm.scripted.server import create_app

__all__ = [
    "ChatCompletionRequest",
    "Reply",
    "create_app",
    "generate_reply",
]
