"""The ``/llm`` app's door: the ``llm`` scope on every route but ``/health``, and token metering.

Every backend's ASGI app (scripted, upstream, vLLM's ingress) goes through :func:`guard_llm_app`, so
``/llm`` is never an open relay of the operator's upstream key once auth is on, and the tokens each
answer reports count against the caller's key budget (an agent's delegated calls: the end user's key).
Refusals are OpenAI error bodies, so the ``openai`` SDK raises its usual errors (``AuthenticationError``,
``PermissionDeniedError``, ``RateLimitError``) and does not retry a spent budget.
"""

from fastapi import FastAPI

from identity.gate import AuthGate
from identity.middleware import RequireScope, openai_error
from identity.scopes import LLM
from llm.tracing import GenAISpanMiddleware
from platform_core.telemetry import TracingMiddleware, setup_telemetry


def guard_llm_app(app: FastAPI, gate: AuthGate | None = None) -> FastAPI:
    """``app`` behind the ``llm`` scope (its ``/health`` stays public), metering the tokens it reports."""
    app.add_middleware(
        RequireScope, gate=gate or AuthGate(), scope=LLM, meter_tokens=True, render=openai_error
    )
    setup_telemetry("llm")
    app.add_middleware(GenAISpanMiddleware)  # each completion's span, around the metering
    app.add_middleware(TracingMiddleware)  # added last: the outermost, so refusals carry a trace id too
    return app
