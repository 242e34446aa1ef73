"""The ``ScriptedLLM`` Serve deployment: :func:`llm.scripted.server.create_app` on CPU replicas."""

from fastapi import FastAPI
from ray import serve

from llm.scripted.server import create_app


@serve.deployment(name="ScriptedLLM")
@serve.ingress()
class ScriptedLLM:
    """Deterministic offline model behind the OpenAI API; stateless, so any number of replicas works.

    The app is built on the replica (``__serve_build_asgi_app__``) from the constructor's arguments, so
    nothing is pickled but two plain values.
    """

    def __init__(self, model_id: str, token_delay_ms: float = 0.0) -> None:
        self._model_id = model_id
        self._token_delay_s = token_delay_ms / 1000

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self._model_id, self._token_delay_s)
