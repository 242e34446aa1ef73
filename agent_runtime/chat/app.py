"""The SSE chat deployment of an agent: ``POST /chat``, the thread API and ``GET /health``.

``POST /chat`` streams an agent run as ``protocols.events``; ``GET`` / ``DELETE /threads/{thread_id}`` read
and forget a conversation.

With auth on (:class:`identity.gate.AuthGate`), every route but ``/health`` needs the scope
``agent:<name>`` (``GET /usage``: ``admin``); a thread belongs to the principal that started it
(another one gets 404, ``admin`` reaches all: :mod:`agent_runtime.state.owners`); the run's calls to
``/llm``, MCP servers and other agents carry a delegation for the caller (:mod:`identity.delegation`),
so its key's token budget and usage cover the whole flow.

Conversations live in the platform database (:mod:`agent_runtime.state.database`), shared by every replica
of the agent and by its A2A face. One run per thread at a time: a message for a thread whose run is still
going is refused with ``409 thread_busy`` before any stream starts (a lease row, so this holds across
replicas; see :mod:`agent_runtime.state.leases`).

An agent file turns its spec into a Serve builder with one line::

    build_app = chat_app_builder(SPEC)

The ASGI app is built inside each replica (``@serve.ingress()`` + ``__serve_build_asgi_app__``), never
deep-copied or pickled by the ingress decorator, so it may hold clients, tasks and locks.
"""

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import date, timedelta

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from ray import serve
from ray.serve import Application
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from agent_runtime.runner import AgentRunner
from agent_runtime.runner_base import BaseAgentRunner
from agent_runtime.spec import AgentRuntimeArgs, AgentSpec
from agent_runtime.state.database import Database
from agent_runtime.state.leases import (
    LeaseStore,
    LocalThreadLeases,
    ThreadBusy,
    ThreadLeases,
    replica_id,
)
from agent_runtime.state.owners import DatabaseThreadOwners, LocalThreadOwners, ThreadOwners
from agent_runtime.state.retention import run_periodically
from identity.gate import AuthGate
from identity.scopes import ADMIN
from identity.service import Caller
from platform_core.admission import Admission, AdmissionLimits, AdmittedDeploymentArgs
from platform_core.api_errors import (
    APIError,
    BodyTooLarge,
    decode_json,
    install_api_error_handlers,
    read_body,
    validation_message,
)
from platform_core.config_version import with_config_version
from platform_core.deployment import SHUTDOWN_MARGIN_S
from platform_core.errors import ConfigurationError, describe_error
from platform_core.settings import get_settings
from platform_core.telemetry import TracingMiddleware, setup_telemetry
from protocols.events import (
    MAX_PRIOR_TURNS,
    THREAD_ID_PATTERN,
    PriorTurn,
    ToolCall,
    encode_sse,
    is_valid_thread_id,
)

logger = logging.getLogger(__name__)

MAX_USER_REQUEST_CHARS = 16_000
MAX_BODY_BYTES = 256 * 1024
# A lease outlives the run's own time limit only by this margin (then it is left to expire).
LEASE_MARGIN_S = 60.0


class ChatRequest(BaseModel):
    """``POST /chat`` body (the reference templates' field names)."""

    model_config = ConfigDict(extra="ignore")

    user_request: str = Field(min_length=1, max_length=MAX_USER_REQUEST_CHARS)
    thread_id: str | None = Field(
        default=None,
        pattern=THREAD_ID_PATTERN,
        description="Continue this conversation; absent or null starts a new one.",
    )

    history: list[PriorTurn] = Field(
        default_factory=list,
        max_length=MAX_PRIOR_TURNS,
        description="Earlier turns of a conversation the client kept itself; starts a new thread with "
        "them (only without thread_id).",
    )

    @field_validator("user_request")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("user_request is blank")
        return value

    @model_validator(mode="after")
    def _history_starts_a_thread(self) -> "ChatRequest":
        if self.history and self.thread_id is not None:
            raise ValueError("history starts a new thread: send it without thread_id")
        return self


class ChatAgentArgs(AgentRuntimeArgs, AdmittedDeploymentArgs):
    """Builder args of an SSE chat agent app (``args:`` in a Serve config)."""

    ping_s: float = Field(default=15.0, gt=0, description="SSE keep-alive comment interval while idle.")


async def parse_chat_request(request: Request) -> ChatRequest:
    """The validated body; raises :class:`APIError` (413, 400, 422) before any stream starts."""
    try:
        body = await read_body(request, MAX_BODY_BYTES)
    except BodyTooLarge as exc:
        raise APIError(413, "request_too_large", str(exc)) from None
    try:
        payload = decode_json(body)
    except ValueError as exc:  # not JSON, not UTF-8, or nested too deeply
        raise APIError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise APIError(422, "invalid_request", "request body must be a JSON object")
    try:
        return ChatRequest.model_validate(payload, strict=False)
    except ValidationError as exc:
        raise APIError(422, "invalid_request", validation_message(exc)) from None


def _is_day(value: str) -> bool:
    """Whether ``value`` is a calendar day written ``YYYY-MM-DD`` (the usage rows' ``day``)."""
    try:
        return len(value) == 10 and date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


def _thread_busy(thread_id: str) -> APIError:
    message = f"thread {thread_id!r} has a run in progress; send the next message when it has finished"
    return APIError(409, "thread_busy", message)


def _storage_unavailable(thread_id: str, exc: Exception) -> APIError:
    # The cause goes to the log only: database error text can name hosts, users and schema.
    logger.error("thread %s: the conversation store failed: %s", thread_id, describe_error(exc))
    return APIError(503, "storage_unavailable", "the conversation store is unavailable; try again later")


def _thread_not_found(thread_id: str) -> APIError:
    return APIError(404, "thread_not_found", f"no conversation with thread_id {thread_id!r}")


def _check_thread_id(thread_id: str) -> None:
    if not is_valid_thread_id(thread_id):
        raise APIError(422, "invalid_request", f"thread_id must match {THREAD_ID_PATTERN}")


def create_chat_app(
    runner: BaseAgentRunner,
    *,
    ping_s: float = 15.0,
    database: Database | None = None,
    retention_days: float | None = None,
    gate: AuthGate | None = None,
    admission: AdmissionLimits | None = None,
) -> FastAPI:
    """The chat ASGI app for one runner (usable without Ray, e.g. under uvicorn or in tests).

    With a ``database`` the agent's memory, thread leases and owners live there (opened at start-up,
    closed at shutdown) and ``retention_days`` purges old threads and tasks hourly; without one, they
    stay in this process. ``gate`` decides on credentials (default: ``AUTH``). ``admission`` bounds the
    requests running and waiting at once (:mod:`platform_core.admission`); beyond, 503 ``overloaded``.
    """
    setup_telemetry(f"{runner.name}_agent")
    routes = _ChatRoutes(runner, ping_s=ping_s, gate=gate or AuthGate())
    app = FastAPI(title=f"{runner.name} chat agent", lifespan=_lifespan(routes, database, retention_days))
    if admission is not None:
        app.add_middleware(Admission, limits=admission)  # inside tracing: a refusal is traced too
    app.add_middleware(TracingMiddleware)
    install_api_error_handlers(app)
    app.post("/chat", response_model=None)(routes.chat)
    app.get("/threads/{thread_id}", response_model=None)(routes.get_thread)
    app.delete("/threads/{thread_id}", response_model=None)(routes.delete_thread)
    app.get("/usage", response_model=None)(routes.usage)
    app.get("/health")(routes.health)
    return app


class _ChatRoutes:
    """The chat app's handlers over one runner; ``leases`` moves to the database at start-up."""

    def __init__(self, runner: BaseAgentRunner, *, ping_s: float, gate: AuthGate) -> None:
        self.runner = runner
        self.ping_s = ping_s
        self.gate = gate
        self.scope = f"agent:{runner.name}"
        self.leases: LeaseStore = LocalThreadLeases()
        self.owners: ThreadOwners = LocalThreadOwners()

    async def _check_owner(self, caller: Caller, thread_id: str, *, create: bool) -> None:
        """404 unless ``caller`` owns the thread (or is admin); ``create`` claims an unowned one."""
        if not self.gate.enabled:
            return
        key = self.runner.thread_key(thread_id)
        principal = caller.principal
        try:
            owner = await (self.owners.claim(key, principal.id) if create else self.owners.owner(key))
        except Exception as exc:
            raise _storage_unavailable(thread_id, exc) from None
        if owner != principal.id and not principal.is_admin:
            raise _thread_not_found(thread_id)  # the same answer as for no thread at all

    async def chat(self, request: Request) -> EventSourceResponse:
        runner, leases = self.runner, self.leases
        caller = await self.gate.identify(request.headers, self.scope)
        parsed = await parse_chat_request(request)
        thread_id = parsed.thread_id or uuid.uuid4().hex
        run_id = uuid.uuid4().hex
        if self.gate.enabled:  # who the request's span (and so the run's trace) acts for
            trace.get_current_span().set_attribute("enduser.id", caller.principal.id)
        await self._check_owner(caller, thread_id, create=True)
        delegation = await self.gate.delegate(caller, runner.run_timeout_s + LEASE_MARGIN_S)
        await self.gate.record_usage(caller, runs=1)
        try:
            lease = await leases.acquire(
                runner.thread_key(thread_id), run_id, max_hold_s=runner.run_timeout_s + LEASE_MARGIN_S
            )
        except ThreadBusy:
            raise _thread_busy(thread_id) from None
        except Exception as exc:
            raise _storage_unavailable(thread_id, exc) from None

        async def frames() -> AsyncIterator[bytes]:
            tool_calls = 0
            try:
                events = runner.stream(
                    parsed.user_request,
                    thread_id,
                    run_id,
                    abort=lease.lost,
                    delegation=delegation,
                    history=parsed.history,
                )
                async for event in events:
                    tool_calls += isinstance(event, ToolCall)
                    yield encode_sse(event).encode()
            finally:
                await lease.release()
                if tool_calls:
                    await self.gate.record_usage(caller, tool_calls=tool_calls)

        return EventSourceResponse(
            frames(),
            # X-Replica-Id: which replica ran it (hostname:pid), for logs and multi-replica tests.
            headers={"X-Thread-Id": thread_id, "X-Run-Id": run_id, "X-Replica-Id": replica_id()},
            ping=self.ping_s,
            background=BackgroundTask(lease.release),  # also when the stream never started
        )

    async def get_thread(self, request: Request, thread_id: str) -> JSONResponse:
        caller = await self.gate.identify(request.headers, self.scope, check_budget=False)
        _check_thread_id(thread_id)
        await self._check_owner(caller, thread_id, create=False)
        try:
            view = await self.runner.read_thread(thread_id)
        except Exception as exc:
            raise _storage_unavailable(thread_id, exc) from None
        if view is None:
            raise _thread_not_found(thread_id)
        return JSONResponse(view.model_dump(mode="json", exclude_none=True))

    async def delete_thread(self, request: Request, thread_id: str) -> Response:
        caller = await self.gate.identify(request.headers, self.scope, check_budget=False)
        _check_thread_id(thread_id)
        await self._check_owner(caller, thread_id, create=False)
        runner = self.runner
        key = runner.thread_key(thread_id)
        try:
            lease = await self.leases.acquire(key, f"delete-{uuid.uuid4().hex}", max_hold_s=LEASE_MARGIN_S)
        except ThreadBusy:
            raise _thread_busy(thread_id) from None
        except Exception as exc:
            raise _storage_unavailable(thread_id, exc) from None
        try:
            found = await runner.delete_thread(thread_id)
            if self.gate.enabled:
                await self.owners.forget(key)
        except Exception as exc:
            raise _storage_unavailable(thread_id, exc) from None
        finally:
            await lease.release()
        if not found:
            raise _thread_not_found(thread_id)
        logger.info("thread %s of agent %s deleted", thread_id, runner.name)
        return Response(status_code=204)

    async def usage(self, request: Request, key: str | None = None, since: str | None = None) -> JSONResponse:
        """``GET /usage``: usage per principal and UTC day, for ``admin`` (404 while auth is off).

        ``key`` narrows it to one key's principal (by key name), ``since`` to days from ``YYYY-MM-DD``
        on; the same rows as ``platform-keys usage``, every agent app serves them.
        """
        if not (await self.gate.open()).enabled:
            raise APIError(404, "not_found", "usage is recorded only while auth is on")
        await self.gate.identify(request.headers, ADMIN, check_budget=False)
        if since is not None and not _is_day(since):
            raise APIError(422, "invalid_request", "since: expected a day as YYYY-MM-DD")
        identity = self.gate.identity
        principal_id = None
        if key is not None:
            record = await identity.keys.by_name(key)
            if record is None:
                raise APIError(404, "not_found", f"no key named {key!r}")
            principal_id = record.principal_id
        rows = await identity.usage.read(principal_id, since_day=since)
        return JSONResponse({"usage": [dataclasses.asdict(row) for row in rows]})

    async def health(self) -> JSONResponse:
        report = await self.runner.health()
        return JSONResponse(
            await with_config_version(report.model_dump()), status_code=200 if report.ready else 503
        )


def _lifespan(
    routes: _ChatRoutes, database: Database | None, retention_days: float | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up and shutdown: credentials, the database (memory, leases, owners, retention), warm-up."""
    runner = routes.runner

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        background: list[asyncio.Task[None]] = []
        await routes.gate.open()  # a replica without its credential source fails here, at start-up
        if database is not None:
            await runner.use_database(database)
            routes.leases = ThreadLeases(database.engine)
            routes.owners = DatabaseThreadOwners(database)
            if retention_days:
                purge = run_periodically(database, timedelta(days=retention_days))
                background.append(asyncio.create_task(purge, name="retention"))
        background.append(asyncio.create_task(runner.warm_up(), name=f"{runner.name}-warm-up"))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.wait(background, timeout=5)
            await runner.aclose()
            await routes.gate.aclose()
            if database is not None:
                await database.aclose()

    return lifespan


def build_runner(spec: AgentSpec, args: AgentRuntimeArgs) -> BaseAgentRunner:
    """The agent's runner: its spec's ``runner`` factory (its framework), else the LangGraph runner."""
    runner = (spec.runner or AgentRunner.from_args)(spec, args)
    if not isinstance(runner, BaseAgentRunner):
        raise ConfigurationError(
            f"agent {spec.name!r}: its runner factory returned {type(runner).__name__}, not a BaseAgentRunner"
        )
    return runner


class ChatAgentReplica:
    """One replica of an SSE chat agent; the app is built here, in the replica."""

    def __init__(self, spec: AgentSpec, args: ChatAgentArgs) -> None:
        settings = get_settings()
        self._app = create_chat_app(
            build_runner(spec, args),
            ping_s=args.ping_s,
            database=Database(pool_size=settings.database_pool_size),
            retention_days=settings.retention_days,
            admission=args.admission(),
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        return self._app


# The decorators as calls: mypy ignores what a class decorator returns, and this is a Deployment.
ChatAgentDeployment: serve.Deployment = serve.deployment(
    ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=64
)(serve.ingress()(ChatAgentReplica))
"""The Serve deployment of :class:`ChatAgentReplica`; builders set its name and sizing."""


def chat_app_builder(spec: AgentSpec) -> Callable[[ChatAgentArgs], Application]:
    """A Serve builder (``module:build_app``) for ``spec``'s chat app, taking :class:`ChatAgentArgs`."""

    def build_app(args: ChatAgentArgs) -> Application:
        options = args.deployment_options()
        # A roll-out lets a run in flight, or still waiting for a slot, finish: the replica is stopped
        # after its longest wait and run at most.
        longest_run_s = args.run_timeout_s or spec.run_timeout_s
        options["graceful_shutdown_timeout_s"] = args.queue_timeout_s + longest_run_s + SHUTDOWN_MARGIN_S
        return ChatAgentDeployment.options(name=f"{spec.name}-chat", **options).bind(spec, args)

    build_app.__doc__ = f"Serve builder of the {spec.name!r} SSE chat agent (args: ChatAgentArgs)."
    return build_app
