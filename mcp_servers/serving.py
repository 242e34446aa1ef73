"""Serve any FastMCP server as a stateless, autoscaled Ray Serve application.

An MCP tool server only has to say *what* it serves (a factory returning a ``FastMCP``); this module owns
*how*: streamable HTTP at exactly ``<route_prefix>/mcp``, stateless sessions (the Serve proxy spreads
requests over replicas and does not pin MCP sessions), DNS-rebinding protection that accepts the hosts
the platform is reached by, ``GET /health`` and the autoscaling knobs.

Two library traps shape the code (see docs): ``@serve.ingress(app)`` deep-copies an app object, so a
session manager started for the original is not the one serving requests ("Task group is not
initialized"); and mcp's default Host check answers 421 to every host but localhost. Hence the ASGI app
is built *on the replica* (:class:`MCPServerReplica`, like every app of the platform, so
``bench.one_process`` can build any app of a config in one process), and the allowed hosts are configured
explicitly.
"""

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

from mcp.server.fastmcp import FastMCP
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field
from ray import serve
from ray.serve import Application
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Scope

from identity.gate import AuthGate
from identity.middleware import RequireScope
from mcp_servers.tracing import trace_tool_calls
from mcp_servers.upstream_health import PROBE_TTL_S, UpstreamProbe
from platform_core.admission import Admission, AdmittedDeploymentArgs
from platform_core.api_errors import RequestBodyLimit, decode_json, http_error_response
from platform_core.config_version import with_config_version
from platform_core.deployment import MaxOngoingRequests, MaxReplicas, NumCpus, TargetOngoingRequests
from platform_core.settings import get_settings
from platform_core.telemetry import TracingMiddleware, setup_telemetry

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
HEALTH_PATH = "/health"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
# MCP request bodies above this get 413 before the transport parses them (tool arguments are small).
MAX_REQUEST_BYTES = 1024 * 1024

ServerFactory = Callable[[], FastMCP]


class MCPScalingArgs(AdmittedDeploymentArgs):
    """How an MCP server app is replicated and which requests it accepts (Serve config ``args``).

    Tool calls are short and many: autoscale early (5 in flight per replica) up to 20 replicas.
    """

    num_cpus: NumCpus = 0.2
    max_replicas: MaxReplicas = 20
    target_ongoing_requests: TargetOngoingRequests = 5
    max_ongoing_requests: MaxOngoingRequests = 50
    json_response: bool = Field(
        default=True,
        description="Answer MCP POSTs with plain JSON instead of an SSE stream (simpler through proxies; "
        "set False if tools stream progress notifications).",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Extra Host header values accepted besides loopback and the hosts of SERVE_BASE_URL "
        "and PUBLIC_BASE_URL; 'host' matches exactly, 'host:*' any port. Others get 421.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Extra Origin header values accepted (browsers); 'scheme://host:*' matches any port.",
    )
    upstream_probe_s: float = Field(
        default=PROBE_TTL_S,
        ge=0,
        description="GET /health probes the server's upstream APIs at most this often (seconds) and "
        "answers 503 ready=false, naming them, while one is down (a refused connection, a timeout, a 5xx).",
    )
    dns_rebinding_protection: bool = Field(
        default=True,
        description="Check Host/Origin headers against the allowed lists. Disable only when a trusted "
        "gateway in front of Serve already restricts hosts (e.g. an authenticated Anyscale service).",
    )

    def upstreams(self) -> dict[str, str]:
        """Name -> URL of the upstream APIs ``GET /health`` probes (none here; servers name theirs)."""
        return {}

    def autoscaling_config(self) -> dict[str, Any]:
        """Serve's autoscaling config, starting one replica even when scaling to zero.

        A deploy then brings up a server that answers, instead of waiting for the first request.
        """
        return {**super().autoscaling_config(), "initial_replicas": max(self.min_replicas, 1)}


def _host_forms(url: str | None) -> tuple[list[str], list[str]]:
    """Host header patterns and Origin patterns under which clients reach ``url``."""
    if not url:
        return [], []
    parts = urlsplit(url)
    if not parts.hostname:
        return [], []
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    scheme = parts.scheme or "http"
    return [host, f"{host}:*"], [f"{scheme}://{host}", f"{scheme}://{host}:*"]


def transport_security(args: MCPScalingArgs) -> TransportSecuritySettings:
    """The MCP transport's DNS-rebinding settings: loopback, the platform's base URLs, ``args``' hosts."""
    if not args.dns_rebinding_protection:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    settings = get_settings()
    hosts = [pattern for host in LOOPBACK_HOSTS for pattern in (host, f"{host}:*")]
    origins = [f"http://{host}:*" for host in LOOPBACK_HOSTS] + [
        f"https://{host}:*" for host in LOOPBACK_HOSTS
    ]
    for url in (settings.serve_base_url, settings.public_base_url):
        url_hosts, url_origins = _host_forms(url)
        hosts += url_hosts
        origins += url_origins
    hosts += args.allowed_hosts
    origins += args.allowed_origins
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(dict.fromkeys(hosts)),
        allowed_origins=list(dict.fromkeys(origins)),
    )


def json_rpc_parse_error(scope: Scope, body: bytes) -> Response | None:
    """A JSON-RPC parse error (400) for a POST body that is not JSON, before mcp's transport reads it.

    mcp answers most such bodies the same way itself, but JSON nested a few thousand levels deep makes its
    parser raise ``RecursionError``, which it answers with a 500.
    """
    if scope.get("method") != "POST" or not body:
        return None
    try:
        decode_json(body)
    except ValueError as exc:
        error = {"code": -32700, "message": f"Parse error: {exc}"}
        return JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status_code=400)
    return None


def _require_fresh(server: FastMCP) -> None:
    """The transport settings are read when the session manager is made; it must not exist yet."""
    try:
        _ = server.session_manager  # raises until streamable_http_app() was called
    except RuntimeError:
        return
    raise ValueError("server_factory must return a new FastMCP whose streamable_http_app() was not called")


def create_mcp_asgi_app(
    server_factory: ServerFactory, args: MCPScalingArgs | None = None, *, gate: AuthGate | None = None
) -> Starlette:
    """The ASGI app of one replica: MCP at ``/mcp`` (stateless streamable HTTP) and ``GET /health``.

    Usable without Ray (tests, ``uvicorn``). Transport settings of the factory's server are overridden:
    the deployment, not the tool code, decides how it is served. ``/mcp`` needs the scope
    ``mcp:<server name>`` (``mcp:weather``) whenever ``gate`` (default: ``AUTH``) says auth is on.
    """
    args = args or MCPScalingArgs()
    server = server_factory()
    setup_telemetry(f"mcp_{server.name}")
    _require_fresh(server)
    trace_tool_calls(server)
    server.settings.stateless_http = True
    server.settings.json_response = args.json_response
    server.settings.streamable_http_path = MCP_PATH
    server.settings.transport_security = transport_security(args)
    mcp_app = server.streamable_http_app()
    mcp_app.add_exception_handler(HTTPException, http_error_response)  # its 404/405 as JSON, not text

    upstreams = UpstreamProbe(args.upstreams(), ttl_s=args.upstream_probe_s)

    async def health(_: Request) -> JSONResponse:
        tools = [tool.name for tool in await server.list_tools()]
        down = await upstreams.down()
        body = {"ready": not down, "server": server.name, "tools": tools}
        if down:  # the server runs, but its tools would fail: say which upstream, until it answers again
            body["upstreams_down"] = down
        return JSONResponse(await with_config_version(body), status_code=503 if down else 200)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Mounted apps' lifespans do not run; the session manager's task group must live here.
        async with server.session_manager.run():
            logger.info("MCP server %r serving %s", server.name, MCP_PATH)
            yield

    # The Serve proxy puts the route prefix into scope["root_path"]; Starlette routes on the path
    # relative to it, so "/mcp" here is "<route_prefix>/mcp" from outside.
    return Starlette(
        routes=[Route(HEALTH_PATH, health, methods=["GET"]), Mount("/", app=mcp_app)],
        lifespan=lifespan,
        middleware=[
            Middleware(TracingMiddleware, public_paths=(HEALTH_PATH,)),
            Middleware(Admission, limits=args.admission(), exempt_paths=(HEALTH_PATH,)),
            Middleware(RequireScope, gate=gate or AuthGate(), scope=f"mcp:{server.name}"),
            Middleware(RequestBodyLimit, max_bytes=MAX_REQUEST_BYTES, check=json_rpc_parse_error),
        ],
        exception_handlers={HTTPException: http_error_response},
    )


class MCPServerReplica:
    """One replica of an MCP server app: builds its ASGI app here, in the replica (see the module doc)."""

    def __init__(self, server_factory: ServerFactory, scaling: MCPScalingArgs) -> None:
        self._app = create_mcp_asgi_app(server_factory, scaling)

    def __serve_build_asgi_app__(self) -> Starlette:
        return self._app


def build_mcp_app(server_factory: ServerFactory, *, name: str, scaling: MCPScalingArgs) -> Application:
    """A Serve application serving ``server_factory()`` on every replica; bind it at any route prefix.

    ``server_factory`` must be picklable (a module-level function or a closure over picklable values):
    Ray ships it to the replicas, which call it there.
    """
    # The decorators as calls: mypy ignores what a class decorator returns, and this is a Deployment.
    replica = serve.ingress()(MCPServerReplica)
    deployment = serve.deployment(name=name, **scaling.deployment_options())(replica)
    return deployment.bind(server_factory, scaling)
