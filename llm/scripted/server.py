"""The scripted model's OpenAI-compatible HTTP API: ``/v1/models``, ``/v1/chat/completions``, ``/health``.

Errors use the OpenAI shape (:mod:`platform_core.openai_errors`): 400 for invalid JSON and invalid
requests (missing ``messages``, unknown role, malformed tools, a ``tool_choice`` naming no offered
tool), 404 for an unknown model or route, 422 for valid requests this model cannot honour (``n`` > 1,
structured output).
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from llm.config import SCRIPTED_MODEL_ID
from llm.scripted.completion import completion_body, completion_chunks, generate_reply
from llm.scripted.protocol import ChatCompletionRequest
from platform_core.config_version import with_config_version
from platform_core.openai_errors import (
    OpenAIError,
    install_error_handlers,
    read_json_object,
    validation_error,
)


def _model_card(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "scripted-offline"}


def create_app(model_id: str = SCRIPTED_MODEL_ID, token_delay_s: float = 0.0) -> FastAPI:
    """The ASGI app; usable without Ray (``uvicorn --factory llm.scripted.server:create_app``)."""
    app = FastAPI(title=f"{model_id}: deterministic offline model (OpenAI-compatible)")
    install_error_handlers(app)
    created = int(time.time())

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return await with_config_version({"ready": True, "backend": "scripted", "model": model_id})

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(model_id, created)]}

    @app.get("/v1/models/{model:path}")
    async def get_model(model: str) -> dict[str, Any]:
        _check_model(model)
        return _model_card(model_id, created)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
        body = await read_json_object(request)
        try:
            completion_request = ChatCompletionRequest.model_validate(body)
        except ValidationError as exc:
            raise validation_error(exc) from exc
        _check_model(completion_request.model)
        _check_supported(completion_request)
        reply = generate_reply(completion_request, model_id)
        if not completion_request.stream:
            return JSONResponse(completion_body(reply, model_id))
        include_usage = bool(
            completion_request.stream_options and completion_request.stream_options.include_usage
        )

        async def events() -> AsyncIterator[bytes]:
            for chunk in completion_chunks(reply, model_id, include_usage):
                yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()
                await asyncio.sleep(token_delay_s)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    def _check_model(model: str) -> None:
        if model != model_id:
            raise OpenAIError(
                404,
                f"The model '{model}' does not exist; this server only serves '{model_id}'.",
                param="model",
                code="model_not_found",
            )

    return app


def _check_supported(request: ChatCompletionRequest) -> None:
    if request.n is not None and request.n > 1:
        raise OpenAIError(
            422, "The scripted model returns one choice; n must be 1.", param="n", code="unsupported"
        )
    response_type = (request.response_format or {}).get("type", "text")
    if response_type != "text":
        raise OpenAIError(
            422,
            f"The scripted offline model cannot produce structured output ({response_type!r}).",
            param="response_format",
            code="unsupported",
        )
