"""The SSE chat deployment: ``POST /chat`` streams an agent run as ``protocols.events``; ``GET /health``.

An agent file turns its spec into a Serve builder with one line::

    build_app = chat_app_builder(SPEC)

The ASGI app is built inside each replica (``@serve.ingress()`` + ``__serve_build_asgi_app__``), never
deep-copied or pickled by the ingress decorator, so it may hold clients, tasks and locks.
"""

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from ray import serve
from ray.serve import Application
from sse_starlette import EventSourceResponse

from agent_runtime.deployment import ServeDeploymentArgs
from agent_runtime.runner import AgentRunner
from agent_runtime.settings import get_settings
from agent_runtime.spec import AgentRuntimeArgs, AgentSpec
from protocols.events import THREAD_ID_PATTERN, encode_sse

logger = logging.getLogger(__name__)

MAX_USER_REQUEST_CHARS = 16_000
MAX_BODY_BYTES = 256 * 1024


class ChatRequest(BaseModel):
    """``POST /chat`` body (the reference templates' field names)."""

    model_config = ConfigDict(extra="ignore")

    user_request: str = Field(min_length=1, max_length=MAX_USER_REQUEST_CHARS)
    thread_id: str | None = Field(
        default=None,
        pattern=THREAD_ID_PATTERN,
        description="Continue this conversation; absent or null starts a new one.",
    )

    @field_validator("user_request")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("user_request is blank")
        return value


class ChatAgentArgs(AgentRuntimeArgs, ServeDeploymentArgs):
    """Builder args of an SSE chat agent app (``args:`` in a Serve config)."""

    ping_s: float = Field(default=15.0, gt=0, description="SSE keep-alive comment interval while idle.")


def error_response(status_code: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status_code)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


async def parse_chat_request(request: Request) -> ChatRequest | JSONResponse:
    """The validated body, or the 4xx answer to send instead."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        return error_response(413, "request_too_large", f"request body over {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            return error_response(413, "request_too_large", f"request body over {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return error_response(400, "invalid_json", f"request body is not valid JSON: {exc}")
    if not isinstance(payload, dict):
        return error_response(422, "invalid_request", "request body must be a JSON object")
    try:
        return ChatRequest.model_validate(payload, strict=False)
    except ValidationError as exc:
        return error_response(422, "invalid_request", _validation_message(exc))


def create_chat_app(runner: AgentRunner, *, ping_s: float = 15.0) -> FastAPI:
    """The chat ASGI app for one runner (usable without Ray, e.g. under uvicorn or in tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warm_up = asyncio.create_task(runner.warm_up(), name=f"{runner.name}-warm-up")
        try:
            yield
        finally:
            warm_up.cancel()
            await asyncio.wait({warm_up}, timeout=5)
            await runner.aclose()

    app = FastAPI(title=f"{runner.name} chat agent", lifespan=lifespan)

    @app.post("/chat", response_model=None)
    async def chat(request: Request) -> EventSourceResponse | JSONResponse:
        parsed = await parse_chat_request(request)
        if isinstance(parsed, JSONResponse):
            return parsed
        thread_id = parsed.thread_id or uuid.uuid4().hex
        run_id = uuid.uuid4().hex

        async def frames() -> AsyncIterator[bytes]:
            async for event in runner.stream(parsed.user_request, thread_id, run_id):
                yield encode_sse(event).encode()

        return EventSourceResponse(
            frames(), headers={"X-Thread-Id": thread_id, "X-Run-Id": run_id}, ping=ping_s
        )

    @app.get("/health")
    async def health() -> JSONResponse:
        report = await runner.health()
        return JSONResponse(report.model_dump(), status_code=200 if report.ready else 503)

    return app


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=64)
@serve.ingress()
class ChatAgentDeployment:
    """One replica of an SSE chat agent; the app is built here, in the replica."""

    def __init__(self, spec: AgentSpec, args: ChatAgentArgs) -> None:
        logging.getLogger("agent_runtime").setLevel(get_settings().log_level.upper())
        self._app = create_chat_app(AgentRunner.from_args(spec, args), ping_s=args.ping_s)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return self._app


def chat_app_builder(spec: AgentSpec) -> Callable[[ChatAgentArgs], Application]:
    """A Serve builder (``module:build_app``) for ``spec``'s chat app, taking :class:`ChatAgentArgs`."""

    def build_app(args: ChatAgentArgs) -> Application:
        options = args.deployment_options()
        return ChatAgentDeployment.options(name=f"{spec.name}-chat", **options).bind(spec, args)

    build_app.__doc__ = f"Serve builder of the {spec.name!r} SSE chat agent (args: ChatAgentArgs)."
    return build_app
