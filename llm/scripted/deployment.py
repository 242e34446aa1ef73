"""The ``ScriptedLLM`` Serve deployment: :func:`llm.scripted.server.create_app` on CPU replicas."""

from fastapi import FastAPI
from ray import serve

from llm.access import guard_llm_app
from llm.scripted.server import create_app


class ScriptedLLMReplica:
    """One replica of the deterministic offline model; stateless, so any number of replicas works.

    The app is built on the replica (``__serve_build_asgi_app__``) from the constructor's arguments, so
    nothing is pickled but two plain values.
    """

    def __init__(self, model_id: str, token_delay_ms: float = 0.0) -> None:
        self._model_id = model_id
        self._token_delay_s = token_delay_ms / 1000

    def __serve_build_asgi_app__(self) -> FastAPI:
        return guard_llm_app(create_app(self._model_id, self._token_delay_s))


# The decorators as calls: mypy ignores what a class decorator returns, and this is a Deployment.
ScriptedLLM: serve.Deployment = serve.deployment(name="ScriptedLLM")(serve.ingress()(ScriptedLLMReplica))
"""The ``ScriptedLLM`` deployment; the ``/llm`` builder sets its sizing and model id."""
