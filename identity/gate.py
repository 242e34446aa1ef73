"""One app's door: whether it checks credentials, and the identity it checks them with.

Every app of the platform (the agents' chat and A2A faces, ``/llm``, the MCP servers) holds one
:class:`AuthGate`, opened lazily on its first request in the replica's event loop::

    gate = AuthGate()
    caller = await gate.identify(request.headers, "agent:weather")   # 401/403/429, or the Caller

``AUTH`` decides (:class:`~platform_core.settings.PlatformSettings`): ``on``, ``off``, or ``auto``, on
when the Serve proxy listens beyond loopback (``http_options.host`` as the Serve controller holds it).
With auth off, every caller is :data:`ANONYMOUS`, an admin: the platform is open, as it says in the log.

With auth on, a replica needs a credential source. The key store is the platform database; the default
SQLite file counts only while the proxy is on loopback (one machine, where ``platform-keys`` writes the
same file): a cluster reachable from outside (both Anyscale configs) must set ``DATABASE_URL``, or the
replica refuses to start with a :class:`~platform_core.errors.ConfigurationError` that says so.
"""

import asyncio
import ipaddress
import logging
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from identity.delegation import install_signer
from identity.oidc import OIDCSettings, OIDCVerifier
from identity.scopes import ADMIN, Principal
from identity.service import Caller, IdentityService
from platform_core.errors import ConfigurationError, describe_error
from platform_core.settings import PlatformSettings, get_settings

logger = logging.getLogger(__name__)

ANONYMOUS = Caller(principal=Principal(id="anonymous", name="anonymous", scopes=frozenset({ADMIN})))
"""The caller of every request while auth is off (it owns what it creates, and sees everything)."""

CONTROLLER_TIMEOUT_S = 10.0
PRUNE_INTERVAL_S = 3600.0
"""How often an open gate deletes the limit counters of windows that ended a day ago or more."""
T = TypeVar("T")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: assume it is reachable from elsewhere


async def serve_proxy_host() -> str | None:
    """The host the Serve proxy listens on, from the controller; None outside a Serve replica."""
    import ray
    from ray import serve
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:
        serve.get_replica_context()
    except Exception:  # not in a replica (RayServeException)
        return None
    controller = await asyncio.to_thread(ray.get_actor, SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    options: Any = await asyncio.wait_for(controller.get_http_config.remote(), CONTROLLER_TIMEOUT_S)
    return str(options.host)


async def resolve_auth(settings: PlatformSettings) -> tuple[bool, str, str | None]:
    """Whether auth is on, why, and the proxy host it was decided on (None outside Serve or not asked)."""
    if settings.auth == "off":
        return False, "AUTH=off", None
    host = await serve_proxy_host()
    if settings.auth == "on":
        return True, "AUTH=on", host
    if host is None:
        return False, "AUTH=auto outside a Serve replica", host
    if is_loopback(host):
        return False, f"AUTH=auto and the Serve proxy listens on loopback ({host})", host
    return True, f"AUTH=auto and the Serve proxy listens on {host}", host


def check_credential_source(settings: PlatformSettings, host: str | None, *, oidc: bool = False) -> None:
    """Refuse auth on a reachable proxy whose only store is the per-machine SQLite file.

    Keys live in the database, and so does the platform's delegation secret unless ``PLATFORM_SECRET``
    is set: replicas on several machines must share both.
    """
    if settings.database_url is not None or host is None or is_loopback(host):
        return
    if not oidc:
        raise ConfigurationError(
            f"auth is on and the Serve proxy listens on {host}, but no credential source is configured: "
            "set DATABASE_URL to the database where `platform-keys` creates the keys (PostgreSQL for a "
            "cluster; the default SQLite file is per machine), or OIDC_ISSUER and OIDC_AUDIENCE"
        )
    if settings.platform_secret is None:
        raise ConfigurationError(
            f"auth is on with OIDC and the Serve proxy listens on {host}: set DATABASE_URL or "
            "PLATFORM_SECRET, so that every replica signs the platform's internal calls with one key"
        )


class AuthGate:
    """Credentials for one app: opened on first use, closed with the app."""

    def __init__(self, *, enabled: bool | None = None, identity: IdentityService | None = None) -> None:
        """``enabled`` overrides ``AUTH`` (tests, embedding); ``identity`` is used instead of a new one."""
        self._forced = enabled
        self._identity = identity
        self._enabled: bool | None = None
        self._lock: asyncio.Lock | None = None
        self._writes: set[asyncio.Future[Any]] = set()
        self._pruning: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """Whether credentials are checked (False until :meth:`open` decided)."""
        return bool(self._enabled)

    @property
    def identity(self) -> IdentityService:
        """The open identity (auth on only)."""
        if self._identity is None or not self._enabled:
            raise ConfigurationError("this app's auth is off; it has no identity")
        return self._identity

    async def open(self) -> "AuthGate":
        """Decide on auth (and open the identity when on); safe to call often, from any request."""
        if self._enabled is not None:
            return self
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._enabled is None:
                await self._decide(get_settings())
        return self

    async def _decide(self, settings: PlatformSettings) -> None:
        if self._forced is not None:
            enabled, reason, host = self._forced, "set by the app", None
        else:
            enabled, reason, host = await resolve_auth(settings)
        if not enabled:
            logger.warning(
                "auth OFF (%s): anyone who reaches the proxy can use every route; set AUTH=on to require "
                "API keys",
                reason,
            )
            install_signer(None)
            self._enabled = False
            return
        oidc_settings = OIDCSettings()
        check_credential_source(settings, host, oidc=oidc_settings.enabled)
        if self._identity is None:
            secret = settings.platform_secret.get_secret_value() if settings.platform_secret else None
            oidc = OIDCVerifier(oidc_settings) if oidc_settings.enabled else None
            limits_url = settings.limits_url.get_secret_value() if settings.limits_url else None
            self._identity = IdentityService(
                pool_size=settings.database_pool_size,
                platform_secret=secret,
                oidc=oidc,
                limits_url=limits_url,
            )
        await self._identity.open()
        install_signer(await self._identity.signer())
        self._pruning = asyncio.create_task(self._prune_periodically(self._identity))
        logger.info("auth ON (%s): every route but health and agent cards needs a credential", reason)
        self._enabled = True

    async def identify(
        self, headers: Mapping[str, str], scope: str | None = None, *, check_budget: bool = True
    ) -> Caller:
        """The caller of a request allowed ``scope`` (401/403/429 ``APIError``); :data:`ANONYMOUS` if off."""
        await self.open()
        if not self._enabled:
            return ANONYMOUS
        # Shielded, as every database write of identity here: a client that leaves must not cancel a
        # statement half-way (see _finish).
        return await self._finish(self.identity.identify(headers, scope, check_budget=check_budget))

    async def delegate(self, caller: Caller, ttl_s: float) -> str | None:
        """The delegation token for the hops made while serving ``caller``; None while auth is off."""
        if not self._enabled:
            return None
        return await self.identity.delegate(caller, ttl_s)

    async def record_usage(self, caller: Caller, *, runs: int = 0, tool_calls: int = 0) -> None:
        """Add runs and tool calls to the caller's usage of today (auth on only).

        Never raises: a count the database could not take is logged, the request it counts goes on.
        """
        if not self._enabled:
            return
        try:
            await self._finish(self.identity.usage.record(caller.principal, runs=runs, tool_calls=tool_calls))
        except Exception as exc:
            logger.warning(
                "usage of %s not recorded (runs %d, tool calls %d): %s",
                caller.principal.id,
                runs,
                tool_calls,
                describe_error(exc),
            )

    async def count_tokens(self, caller: Caller, prompt_tokens: int, completion_tokens: int) -> None:
        """LLM tokens spent for ``caller`` (auth on only): its key's budget and its usage.

        Never raises, as :meth:`record_usage`: the answer that spent them was already sent.
        """
        if not self._enabled:
            return
        try:
            await self._finish(self.identity.count_tokens(caller, prompt_tokens, completion_tokens))
        except Exception as exc:
            logger.warning(
                "%d LLM tokens of %s not counted: %s",
                prompt_tokens + completion_tokens,
                caller.principal.id,
                describe_error(exc),
            )

    async def _finish(self, work: Coroutine[Any, Any, T]) -> T:
        """``work`` in a task of its own that the caller's cancellation does not stop.

        These calls run when a client may be leaving (a stream's last step, an answer's end). Cancelled
        between executing a statement and reading its result, an aiosqlite connection keeps the
        statement open, and with it SQLite's write lock, for every process on the file: so the work
        always runs to its end, and the caller's cancellation still reaches the caller.
        """
        task = asyncio.ensure_future(work)
        self._writes.add(task)  # a strong reference while it runs on its own
        task.add_done_callback(self._writes.discard)
        return await asyncio.shield(task)

    @staticmethod
    async def _prune_periodically(identity: IdentityService) -> None:
        """Old limit counters go (one row per key and minute would pile up); a failure is retried later."""
        while True:
            try:
                await identity.limits.prune()
            except Exception as exc:
                logger.warning(
                    "old limit counters not pruned (retrying in %.0f s): %s",
                    PRUNE_INTERVAL_S,
                    describe_error(exc),
                )
            await asyncio.sleep(PRUNE_INTERVAL_S)

    async def aclose(self) -> None:
        """Let pending writes finish, then close the identity's connections (the app's shutdown)."""
        if self._pruning is not None:
            self._pruning.cancel()
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=10)
        if self._identity is not None and self._enabled:
            await self._identity.aclose()
