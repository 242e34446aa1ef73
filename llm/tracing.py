"""Each chat completion of ``/llm`` as a span with the OpenTelemetry GenAI conventions.

``chat <model>`` spans carry ``gen_ai.operation.name`` (``chat``), ``gen_ai.request.model``, and, from
the usage the answer reports (streamed answers included: agents ask for it), ``gen_ai.usage.input_tokens``
and ``gen_ai.usage.output_tokens``. The span is a child of the request's server span, so it sits in
the trace of the agent run that made the call. Only while tracing is on; off, requests pass untouched.
"""

import json
from typing import Any

from opentelemetry.trace import StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from identity.middleware import UsageMeter, read_json_body
from platform_core.api_errors import replay
from platform_core.telemetry import tracer, tracing_on


def _model_of(body: bytes | None) -> str | None:
    try:
        document: Any = json.loads(body) if body else None
    except ValueError:
        return None
    model = document.get("model") if isinstance(document, dict) else None
    return model if isinstance(model, str) else None


class GenAISpanMiddleware:
    """ASGI: a ``chat <model>`` span around every ``POST .../chat/completions``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the completion in its span; read the model from the request, the usage from the answer."""
        is_completion = scope["type"] == "http" and str(scope.get("path", "")).endswith("/chat/completions")
        if not is_completion or scope.get("method") != "POST" or not tracing_on():
            await self.app(scope, receive, send)
            return
        messages, body = await read_json_body(receive)
        model = _model_of(body) or "unknown"
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}
        with tracer().start_as_current_span(f"chat {model}", attributes=attributes) as span:
            meter = UsageMeter()
            metered = meter.wrap(send)
            status: list[int] = []

            async def observed(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status.append(int(message["status"]))
                await metered(message)

            await self.app(scope, replay(messages, receive), observed)
            if meter.usage is not None:
                span.set_attribute("gen_ai.usage.input_tokens", meter.usage[0])
                span.set_attribute("gen_ai.usage.output_tokens", meter.usage[1])
            if status and status[0] >= 500:
                span.set_status(StatusCode.ERROR)
