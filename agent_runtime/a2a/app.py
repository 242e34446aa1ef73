"""A2A app: a thin A2A 1.0 (and 0.3) protocol adapter in front of an SSE agent's ``/chat``.

The app holds no model and no tools. It serves the agent card, A2A JSON-RPC and REST, and turns every
message into a ``/chat`` run of the same agent through the Serve proxy (see ``agent_runtime.a2a.executor``),
so both faces of an agent share one memory and the adapter scales on its own.

Routes under the app's route prefix::

    GET  /.well-known/agent-card.json   the card (public); interface URLs = public base URL + route prefix;
                                        A2A 1.0 shape for ``A2A-Version: 1.x``, 0.3 shape otherwise
    GET  /health                        {"ready", "agent", "chat"}: is the agent's /chat reachable (public)
    POST /                              A2A JSON-RPC (1.0, and 0.3 without an ``A2A-Version`` header)
    POST /message:send, /message:stream, /tasks/...    A2A 1.0 HTTP+JSON
    POST /v1/message:send, ...          A2A 0.3 HTTP+JSON

An agent module exports a builder for its A2A face next to its SSE ``build_app``::

    build_app = chat_app_builder(SPEC)
    build_a2a_app = a2a_app_builder(SPEC, skills=[A2ASkill(id="forecast", ...)])

(name and description come from the spec; routes default to ``/weather-agent`` and ``/a2a-weather``).

``build_app`` here is the same builder without a spec: every card field comes from the config's args.

With auth on, everything but the card and ``/health`` needs ``agent:<name>``, and a task belongs to the
principal that created it (:mod:`agent_runtime.a2a.access`).

Tasks live in the platform database (``DATABASE_URL``, :mod:`agent_runtime.state.database`) in a2a-sdk's
clustered task store: every replica reads, streams (``tasks/subscribe``) and cancels every task, whichever
replica runs it; a task survives the replica that created it.
"""

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from a2a.compat.v0_3.conversions import to_compat_agent_card
from a2a.server.cluster import VersionedDatabaseTaskStore
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import InMemoryTaskStore, TaskStore
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from a2a.utils.constants import (
    AGENT_CARD_WELL_KNOWN_PATH,
    PROTOCOL_VERSION_0_3,
    PROTOCOL_VERSION_1_0,
    VERSION_HEADER,
    TransportProtocol,
)
from a2a.utils.errors import VersionNotSupportedError
from google.protobuf.json_format import MessageToDict
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, Field, model_validator
from ray import serve
from ray.serve import Application
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent_runtime.a2a.access import PrincipalContextBuilder, require_bearer
from agent_runtime.a2a.executor import ChatAgentExecutor
from agent_runtime.state.database import Database
from agent_runtime.state.orphaned_tasks import ORPHAN_CHECK_INTERVAL_S, fail_orphaned_tasks_periodically
from agent_runtime.tools.sources import resolve_url
from identity.gate import AuthGate
from identity.middleware import RequireScope
from platform_core.admission import Admission, AdmissionLimits, AdmittedDeploymentArgs
from platform_core.api_errors import RequestBodyLimit, http_error_response
from platform_core.config_version import with_config_version
from platform_core.deployment import SHUTDOWN_MARGIN_S, MaxOngoingRequests, NumCpus
from platform_core.settings import get_settings
from platform_core.telemetry import TracingMiddleware, setup_telemetry

logger = logging.getLogger(__name__)

_HEALTH_TIMEOUT_S = 3.0
# Bodies above this get 413 before a2a-sdk parses them: the agent's /chat takes 256 KiB at most anyway.
MAX_REQUEST_BYTES = 1024 * 1024


class A2ASkill(BaseModel):
    """One skill on the agent card (what callers and planning models read)."""

    id: str
    name: str
    description: str
    tags: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)


class A2AAgentSpec(BaseModel):
    """What an agent module declares about its A2A face; the defaults of :class:`A2AAgentArgs`.

    Routes follow the platform's convention unless given: the SSE agent ``weather`` is served at
    ``/weather-agent`` and its A2A app at ``/a2a-weather``.
    """

    name: str
    description: str
    skills: list[A2ASkill] = Field(default_factory=list)
    agent_url: str = Field(
        default="", description="Route (``/weather-agent``) or absolute base URL of the SSE agent."
    )
    route_prefix: str = Field(default="", description="Route prefix the A2A app is served at.")
    version: str = "1.0.0"

    @model_validator(mode="after")
    def _conventional_routes(self) -> "A2AAgentSpec":
        self.agent_url = self.agent_url or f"/{self.name}-agent"
        self.route_prefix = self.route_prefix or f"/a2a-{self.name}"
        return self


class A2AAgentArgs(AdmittedDeploymentArgs):
    """Serve config ``args`` of an A2A app. Unset card fields come from the agent's spec."""

    name: str | None = None
    description: str | None = None
    skills: list[A2ASkill] | None = None
    version: str | None = None
    agent_url: str | None = Field(
        default=None,
        description="Route of the SSE agent (resolved against SERVE_BASE_URL) or its absolute base URL; "
        "the app posts to `<agent_url>/chat`.",
    )
    route_prefix: str | None = Field(
        default=None, description="Route prefix this app is served at (must match the config's)."
    )
    public_base_url: str | None = Field(
        default=None, description="Base URL in the card's interface URLs; default PUBLIC_BASE_URL."
    )
    task_timeout_s: float = Field(default=300.0, gt=0, description="Longest run of one task.")
    progress_interval_s: float = Field(default=1.0, ge=0, description="Shortest gap of text progress.")
    cancel_check_s: float = Field(
        default=1.0,
        gt=0,
        description="How often a running task re-reads its stored state, so that a cancel another replica "
        "recorded stops it.",
    )
    # The adapter only relays bytes: less CPU and more open streams per replica than a chat agent.
    num_cpus: NumCpus = 0.1
    max_ongoing_requests: MaxOngoingRequests = 200

    def resolve(self, spec: A2AAgentSpec | None) -> A2AAgentSpec:
        """The effective card fields: these args over the spec."""
        fields = spec.model_dump() if spec is not None else {}
        fields.update(self.model_dump(include=set(A2AAgentSpec.model_fields), exclude_none=True))
        missing = [name for name in ("name", "description") if name not in fields]
        if missing:
            raise ValueError(f"A2A app args miss {', '.join(missing)} (no agent spec provides them)")
        return A2AAgentSpec.model_validate(fields)


def public_url(spec: A2AAgentSpec, public_base_url: str | None = None) -> str:
    """Where A2A clients reach this app: public base URL + route prefix (never a guessed localhost)."""
    base = (public_base_url or get_settings().external_base_url).rstrip("/")
    return base + "/" + spec.route_prefix.strip("/")


def build_agent_card(spec: A2AAgentSpec, url: str) -> AgentCard:
    """The agent card. Build it where it is served: protobuf objects do not pickle."""
    skills = spec.skills or [A2ASkill(id=spec.name, name=spec.name, description=spec.description)]
    # JSON-RPC is served at the prefix root; REST clients append their paths to the bare URL.
    rpc_url, rest_url = url + "/", url
    interfaces = [
        AgentInterface(url=rpc_url, protocol_binding=binding, protocol_version=version)
        for version in (PROTOCOL_VERSION_1_0, PROTOCOL_VERSION_0_3)
        for binding in (TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON)
    ]
    for interface in interfaces:
        if interface.protocol_binding == TransportProtocol.HTTP_JSON:
            interface.url = rest_url
    return AgentCard(
        name=spec.name,
        description=spec.description,
        version=spec.version,
        supported_interfaces=interfaces,
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        # The spec requires tags on every skill.
        skills=[AgentSkill(**skill.model_dump() | {"tags": skill.tags or [skill.id]}) for skill in skills],
    )


def card_bodies(card: AgentCard) -> dict[str, dict[str, Any]]:
    """The card's JSON per protocol version, each valid for its own schema.

    a2a-sdk's card route serves one merged body: the 1.0 card plus the 0.3 fields (``url``,
    ``preferredTransport``, ``protocolVersion``, ``additionalInterfaces``), which the 1.0 ``AgentCard``
    schema rejects. Both shapes come from the SDK's own conversions instead: protobuf JSON for 1.0, the 0.3
    compat model (the card's 0.3 interfaces) for 0.3.
    """
    bodies = {PROTOCOL_VERSION_1_0: MessageToDict(card)}
    try:
        bodies[PROTOCOL_VERSION_0_3] = to_compat_agent_card(card).model_dump(mode="json", exclude_none=True)
    except VersionNotSupportedError:  # no 0.3 interface: 0.3 clients cannot use the agent at all
        bodies[PROTOCOL_VERSION_0_3] = bodies[PROTOCOL_VERSION_1_0]
    return bodies


def card_version(header: str | None) -> str:
    """Which card a request gets from its ``A2A-Version`` header.

    No header (or 0.x) is a 0.3 client, as the A2A 1.0 spec and the SDK's request handlers read it;
    anything else gets the 1.0 card.
    """
    header = (header or "").strip()
    try:
        legacy = not header or Version(header).major == 0
    except InvalidVersion:
        legacy = False  # not a version at all: the 1.0 card, as for any client that sends the header
    return PROTOCOL_VERSION_0_3 if legacy else PROTOCOL_VERSION_1_0


def agent_card_routes(card: AgentCard) -> list[Route]:
    """``GET /.well-known/agent-card.json``, public, in the shape of the caller's protocol version.

    The body differs by ``A2A-Version``, so responses say ``Vary: A2A-Version`` and each shape has its own
    (weak) ETag; ``If-None-Match`` revalidates with a 304 as the SDK's route does.
    """
    # Made on the first request: the app adds its security scheme at start-up, once auth is decided.
    bodies: dict[str, dict[str, Any]] = {}
    etags: dict[str, str] = {}

    async def agent_card(request: Request) -> Response:
        if not bodies:
            bodies.update(card_bodies(card))
            etags.update({version: _weak_etag(body) for version, body in bodies.items()})
        version = card_version(request.headers.get(VERSION_HEADER))
        headers = {"ETag": etags[version], "Vary": VERSION_HEADER}
        if_none_match = request.headers.get("if-none-match", "")
        candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        if "*" in candidates or etags[version].removeprefix("W/") in candidates:
            return Response(status_code=304, headers=headers)
        return JSONResponse(bodies[version], headers=headers)

    return [Route(AGENT_CARD_WELL_KNOWN_PATH, agent_card, methods=["GET"])]


def _weak_etag(body: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f'W/"{digest}"'


def create_a2a_app(
    spec: A2AAgentSpec,
    *,
    public_base_url: str | None = None,
    task_timeout_s: float = 300.0,
    progress_interval_s: float = 1.0,
    cancel_check_s: float = 1.0,
    orphan_check_s: float = ORPHAN_CHECK_INTERVAL_S,
    task_store: TaskStore | None = None,
    database: Database | None = None,
    gate: AuthGate | None = None,
    admission: AdmissionLimits | None = None,
) -> Starlette:
    """The A2A ASGI app for one agent (mount it at ``spec.route_prefix``).

    Tasks go to ``database`` (opened at start-up, closed at shutdown), else to ``task_store``, else to
    this process's memory. On a database, every ``orphan_check_s`` the app records ``failed`` this
    agent's tasks that a replica which stopped left open (:mod:`agent_runtime.state.orphaned_tasks`).
    ``gate`` decides on credentials (default: ``AUTH``; :mod:`.access`).
    ``admission`` bounds the requests running and waiting at once; beyond, 503 ``overloaded``.
    """
    gate = gate or AuthGate()
    setup_telemetry(f"a2a_{spec.name}")
    agent_url = resolve_url(spec.agent_url).rstrip("/")
    card = build_agent_card(spec, public_url(spec, public_base_url))
    store: TaskStore | VersionedDatabaseTaskStore = task_store or InMemoryTaskStore()
    event_stream = None
    shared: VersionedDatabaseTaskStore | None = None
    if database is not None:
        shared, event_stream = database.task_store(spec.name)
        store = shared
    executor = ChatAgentExecutor(
        agent_url + "/chat",
        task_timeout_s=task_timeout_s,
        progress_interval_s=progress_interval_s,
        task_store=store,
        cancel_check_s=cancel_check_s,
    )
    handler = DefaultRequestHandler(
        agent_executor=executor, task_store=store, agent_card=card, event_stream=event_stream
    )
    health_client = httpx.AsyncClient(timeout=_HEALTH_TIMEOUT_S)
    context = PrincipalContextBuilder()

    async def health(_: Request) -> JSONResponse:
        chat = await _agent_ready(health_client, agent_url + "/health")
        return JSONResponse(await with_config_version({"ready": chat, "agent": spec.name, "chat": chat}))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        logger.info("A2A app %r at %s adapts %s/chat", spec.name, card.supported_interfaces[0].url, agent_url)
        await gate.open()
        if gate.enabled:
            require_bearer(card)
        sweeping: asyncio.Task[None] | None = None
        if database is not None and shared is not None:
            await database.open()
            # A task can last task_timeout_s; one untouched for longer (and the margin) has no replica.
            sweeping = asyncio.create_task(
                fail_orphaned_tasks_periodically(
                    shared, database.engine, spec.name, task_timeout_s + SHUTDOWN_MARGIN_S, orphan_check_s
                ),
                name=f"a2a-{spec.name}-orphaned-tasks",
            )
        try:
            yield
        finally:
            if sweeping is not None:
                sweeping.cancel()
                await asyncio.gather(sweeping, return_exceptions=True)
            await handler.aclose()
            await executor.aclose()
            await health_client.aclose()
            await gate.aclose()
            if database is not None:
                await database.aclose()

    routes = [
        *agent_card_routes(card),
        Route("/health", health, methods=["GET"]),
        *create_jsonrpc_routes(handler, rpc_url="/", enable_v0_3_compat=True, context_builder=context),
        # Last: the REST routes end in a ``/{tenant}`` catch-all that shadows anything after it.
        *create_rest_routes(handler, enable_v0_3_compat=True, context_builder=context),
    ]
    public_paths = (AGENT_CARD_WELL_KNOWN_PATH, "/health")
    admitting = [Middleware(Admission, limits=admission, exempt_paths=public_paths)] if admission else []
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(TracingMiddleware, public_paths=public_paths),
            *admitting,
            Middleware(
                RequireScope,
                gate=gate,
                scope=f"agent:{spec.name}",
                public_paths=public_paths,
                # The task's /chat run acts for the caller, up to the longest task.
                delegate_ttl_s=task_timeout_s + SHUTDOWN_MARGIN_S,
            ),
            Middleware(RequestBodyLimit, max_bytes=MAX_REQUEST_BYTES),
        ],
        # Unknown routes and wrong methods answer JSON too (a2a-sdk's own errors are JSON already).
        exception_handlers={HTTPException: http_error_response},
    )


async def _agent_ready(client: httpx.AsyncClient, health_url: str) -> bool:
    try:
        response = await client.get(health_url)
        return response.status_code == 200 and bool(response.json().get("ready", True))
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


class A2AAgentReplica:
    """One replica of an A2A app; the ASGI app (and its protobuf card) is built on the replica."""

    def __init__(self, spec: dict[str, Any], options: dict[str, Any], admission: dict[str, Any]) -> None:
        database = Database(pool_size=get_settings().database_pool_size)
        self._app = create_a2a_app(
            A2AAgentSpec.model_validate(spec),
            **options,
            database=database,
            admission=AdmissionLimits.model_validate(admission),
        )

    def __serve_build_asgi_app__(self) -> Starlette:
        return self._app


# The decorators as calls: mypy ignores what a class decorator returns, and this is a Deployment.
A2AAgentDeployment: serve.Deployment = serve.deployment()(serve.ingress()(A2AAgentReplica))
"""The Serve deployment of :class:`A2AAgentReplica`; builders set its name and sizing."""


def a2a_app_builder(agent: Any = None, **fields: Any) -> Callable[[A2AAgentArgs], Application]:
    """A Serve builder (``module:build_a2a_app``) for an agent's A2A face, taking :class:`A2AAgentArgs`.

    ``agent`` is an :class:`A2AAgentSpec`, or any spec with ``name`` and ``description`` (the agent's
    ``AgentSpec``) completed by ``fields`` (``skills=[...]``, ``agent_url=...``); ``None`` leaves every
    card field to the config's args.
    """
    spec: A2AAgentSpec | None
    if agent is None:
        spec = A2AAgentSpec.model_validate(fields) if fields else None
    elif isinstance(agent, A2AAgentSpec):
        spec = agent.model_validate(agent.model_dump() | fields)
    else:
        spec = A2AAgentSpec(name=agent.name, description=agent.description, **fields)

    def build_a2a_app(args: A2AAgentArgs) -> Application:
        resolved = args.resolve(spec)
        options = args.model_dump(
            include={"public_base_url", "task_timeout_s", "progress_interval_s", "cancel_check_s"}
        )
        deployment = A2AAgentDeployment.options(
            name=f"{resolved.name}-a2a",
            **args.deployment_options(),
            # A roll-out lets a task in flight, or waiting for a slot, finish: the replica is stopped after
            # its longest wait and task at most.
            graceful_shutdown_timeout_s=args.queue_timeout_s + args.task_timeout_s + SHUTDOWN_MARGIN_S,
        )
        return deployment.bind(resolved.model_dump(), options, args.admission().model_dump())

    build_a2a_app.__doc__ = f"Serve builder of the A2A app of {spec.name if spec else 'an SSE agent'!r}."
    return build_a2a_app


build_app = a2a_app_builder()
"""Serve builder for an A2A app whose card fields all come from the config's args."""
