"""The ``/openai`` app: every agent of a config as a model of the OpenAI Chat Completions API.

Routes under the app's route prefix (``/openai``)::

    GET  /v1/models                  the agents, one model each (id = agent name)
    GET  /v1/models/{model}          one of them
    POST /v1/chat/completions        run the agent ``model``: non-streaming, or ``stream: true`` (SSE)
    GET  /health                     {"ready", "agents": {name: ready}} (public)

The app holds no agent logic: each request becomes one run of the agent's own ``POST /chat`` through
:class:`~protocols.chat_client.ChatClient`, over the Serve proxy like every other hop, and the run's
events are relayed in the OpenAI wire format (:mod:`.relay`). The request's ``messages`` are the
conversation: the last one (the user's) is the run's request, the earlier ones its history on a new
thread (:mod:`.wire`). A client that wants server-side memory sends ``X-Thread-Id`` (every answer
carries one) and then only its new message.

Identity: the caller's ``Authorization`` header goes with the run, so the agent checks the key's
``agent:<name>`` scope, limits and budget itself, exactly as for ``/chat``; ``/v1/models`` lists only the
agents the key may use. Errors are OpenAI error bodies (:mod:`platform_core.openai_errors`).
"""

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import Field, ValidationError, field_validator
from ray import serve
from ray.serve import Application

from agent_runtime.openai_api.relay import CompletionRelay, sse
from agent_runtime.openai_api.wire import CompletionRequest, conversation
from agent_runtime.tools.sources import resolve_url
from identity.gate import AuthGate
from identity.middleware import openai_error
from platform_core.api_errors import APIError
from platform_core.config_version import with_config_version
from platform_core.deployment import SHUTDOWN_MARGIN_S, MaxOngoingRequests, NumCpus, ServeDeploymentArgs
from platform_core.openai_errors import (
    OpenAIError,
    install_error_handlers,
    read_json_object,
    validation_error,
)
from platform_core.telemetry import TRACE_HOOKS, TracingMiddleware, setup_telemetry
from protocols.chat_client import ChatClient, ChatClientError, ChatRequestError
from protocols.events import ChatEvent, is_valid_thread_id

logger = logging.getLogger(__name__)

THREAD_HEADER = "X-Thread-Id"
OWNER = "ray-agent-platform"
_HEALTH_TIMEOUT_S = 3.0


class OpenAIAgentsArgs(ServeDeploymentArgs):
    """Builder args of the ``/openai`` app (``args:`` in a Serve config)."""

    agents: dict[str, str] = Field(
        min_length=1,
        description="Model id (the agent's name) -> the agent's route (/weather-agent, resolved against "
        "SERVE_BASE_URL) or absolute base URL.",
    )
    run_timeout_s: float = Field(
        default=300.0, gt=0, description="Longest agent run relayed (a roll-out lets it finish)."
    )
    # A relay: little CPU, many open streams per replica.
    num_cpus: NumCpus = 0.1
    max_ongoing_requests: MaxOngoingRequests = 200

    @field_validator("agents")
    @classmethod
    def _agent_names(cls, agents: dict[str, str]) -> dict[str, str]:
        for name in agents:
            if not name.strip() or name != name.strip():
                raise ValueError(f"model id {name!r}: no blank ids, no surrounding spaces")
        return agents


def _bearer(request: Request) -> str | None:
    """The caller's bearer token, forwarded to the agent (None when the request has none)."""
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _agent_refused(exc: ChatRequestError) -> OpenAIError:
    """The agent's HTTP error before any stream, in the OpenAI shape (``Retry-After`` kept)."""
    headers = {"Retry-After": str(max(1, round(exc.retry_after_s)))} if exc.retry_after_s else {}
    if exc.code != "rate_limited":
        headers["x-should-retry"] = "false"  # a refusal the openai SDK must not retry on its own
    return OpenAIError(exc.status, exc.message, code=exc.code, headers=headers)


def _unreachable(exc: ChatClientError) -> OpenAIError:
    return OpenAIError(
        502, f"The agent could not be reached: {exc.message}", type="agent_error", code=exc.code
    )


class _Routes:
    """The handlers over the agents' chat clients."""

    def __init__(self, agent_urls: dict[str, str], http: httpx.AsyncClient, gate: AuthGate) -> None:
        self.clients = {name: ChatClient(url, http=http) for name, url in agent_urls.items()}
        self.http = http
        self.gate = gate

    def _model(self, name: str, created: int = 0) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": created, "owned_by": OWNER}

    async def _usable(self, request: Request) -> list[str] | Response:
        """The agents the caller may run (all while auth is off), or the identity error's response."""
        try:
            caller = await self.gate.identify(request.headers, check_budget=False)
        except APIError as exc:
            return openai_error(exc)
        return [name for name in self.clients if caller.principal.allows(f"agent:{name}")]

    async def list_models(self, request: Request) -> Response:
        usable = await self._usable(request)
        if isinstance(usable, Response):
            return usable
        return JSONResponse({"object": "list", "data": [self._model(name) for name in usable]})

    async def get_model(self, request: Request, model: str) -> Response:
        usable = await self._usable(request)
        if isinstance(usable, Response):
            return usable
        if model not in usable:
            raise _no_such_model(model)
        return JSONResponse(self._model(model))

    async def chat_completions(self, request: Request) -> Response:
        try:
            parsed = CompletionRequest.model_validate(await read_json_object(request))
        except ValidationError as exc:
            raise validation_error(exc) from None
        client = self.clients.get(parsed.model)
        if client is None:
            raise _no_such_model(parsed.model)
        thread_id = request.headers.get(THREAD_HEADER)
        if thread_id is not None and not is_valid_thread_id(thread_id):
            raise OpenAIError(400, f"{THREAD_HEADER} is not a valid thread id.", code="invalid_thread_id")
        try:
            user_request, history = conversation(parsed.messages)
        except ValidationError as exc:
            raise validation_error(exc) from None
        if thread_id is not None:
            history = []  # the thread holds the conversation: only the new message is sent
        events = client.stream(user_request, thread_id, token=_bearer(request), history=history)
        relay = CompletionRelay(parsed.model)
        try:
            relay.take(await anext(events))  # metadata: the agent accepted the run
        except ChatRequestError as exc:
            await events.aclose()
            raise _agent_refused(exc) from None
        except ChatClientError as exc:
            await events.aclose()
            raise _unreachable(exc) from None
        except ValueError:  # ChatClient refuses to send a token that cannot be a header value
            await events.aclose()
            raise OpenAIError(401, "The Authorization header is not a usable bearer token.") from None
        headers = {THREAD_HEADER: relay.thread_id or ""}
        if not parsed.stream:
            async with aclosing(events):
                async for _ in relay.chunks(events):
                    pass  # a whole completion: the events are only recorded
            return JSONResponse(relay.completion(), headers=headers)
        return StreamingResponse(
            _stream(events, relay, include_usage=parsed.include_usage),
            media_type="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def health(self) -> JSONResponse:
        checks = await asyncio.gather(
            *(asyncio.wait_for(client.health(), _HEALTH_TIMEOUT_S) for client in self.clients.values()),
            return_exceptions=True,
        )
        agents = {
            name: isinstance(report, dict) and bool(report.get("ready"))
            for name, report in zip(self.clients, checks, strict=True)
        }
        ready = any(agents.values())
        body = await with_config_version({"ready": ready, "agents": agents})
        return JSONResponse(body, status_code=200 if ready else 503)


def _no_such_model(model: str) -> OpenAIError:
    return OpenAIError(
        404, f"The model {model!r} does not exist: GET /v1/models lists the agents.", code="model_not_found"
    )


async def _stream(
    events: AsyncGenerator[ChatEvent, None], relay: CompletionRelay, *, include_usage: bool
) -> AsyncIterator[bytes]:
    async with aclosing(events):  # the client leaving closes the agent's stream, which stops its run
        yield sse(relay.first_chunk())
        async for chunk in relay.chunks(events):
            yield sse(chunk)
        for frame in relay.closing_frames(include_usage=include_usage):
            yield frame


def create_openai_app(
    agent_urls: dict[str, str], *, gate: AuthGate | None = None, http: httpx.AsyncClient | None = None
) -> FastAPI:
    """The ASGI app over ``agent_urls`` (model id -> the agent's base URL); mount it at ``/openai``."""
    gate = gate or AuthGate()
    setup_telemetry("openai")
    http = http or httpx.AsyncClient(
        follow_redirects=False,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=50),
        event_hooks=TRACE_HOOKS,
    )
    routes = _Routes(agent_urls, http, gate)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        logger.info("OpenAI API for agents %s", ", ".join(f"{n} -> {u}" for n, u in agent_urls.items()))
        await gate.open()
        try:
            yield
        finally:
            await http.aclose()
            await gate.aclose()

    app = FastAPI(title="Agents as OpenAI models", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(TracingMiddleware)
    install_error_handlers(app)
    app.get("/v1/models", response_model=None)(routes.list_models)
    app.get("/v1/models/{model}", response_model=None)(routes.get_model)
    app.post("/v1/chat/completions", response_model=None)(routes.chat_completions)
    app.get("/health", response_model=None)(routes.health)
    return app


class OpenAIAgentsReplica:
    """One replica of the ``/openai`` app; the app is built here, in the replica."""

    def __init__(self, args: OpenAIAgentsArgs) -> None:
        urls = {name: resolve_url(target).rstrip("/") for name, target in args.agents.items()}
        self._app = create_openai_app(urls)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return self._app


# The decorators as calls: mypy ignores what a class decorator returns, and this is a Deployment.
OpenAIAgentsDeployment: serve.Deployment = serve.deployment()(serve.ingress()(OpenAIAgentsReplica))
"""The Serve deployment of :class:`OpenAIAgentsReplica`."""


def build_app(args: OpenAIAgentsArgs) -> Application:
    """Serve builder of the ``/openai`` app (``agent_runtime.openai_api.app:build_app``)."""
    return OpenAIAgentsDeployment.options(
        name="openai-agents",
        **args.deployment_options(),
        graceful_shutdown_timeout_s=args.run_timeout_s + SHUTDOWN_MARGIN_S,
    ).bind(args)
