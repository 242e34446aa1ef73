"""Bounded admission: a replica runs so many requests at once, lets so many more wait, refuses the rest.

Serve's own bound (``max_queued_requests``) answers from the proxy with a text body; the platform's
clients parse one JSON error shape everywhere. So the bound lives in each replica, as ASGI middleware:

- up to ``max_running`` requests run at once (an agent's open SSE streams, an MCP server's tool calls);
- up to ``max_waiting`` more wait, first come first served, for at most ``wait_s`` each;
- any other request, or one whose wait ran out, gets ``503`` with ``Retry-After`` and
  ``{"error": {"code": "overloaded", ...}}`` at once: never an unbounded wait or a hung stream.

Serve must then hand the replica more than it runs: :class:`AdmittedDeploymentArgs` sets Serve's
``max_ongoing_requests`` to running + waiting + :data:`HEADROOM` (health probes and refusals in progress
also count there), so Serve's router only queues while no replica is up at all (a start, a restart).
Health probes (``exempt_paths``) are never held back: an overloaded replica is busy, not broken.
"""

import asyncio
import logging
import time
from typing import Annotated, Any

from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from platform_core.api_errors import APIError, relative_path
from platform_core.deployment import ServeDeploymentArgs

logger = logging.getLogger(__name__)

# Serve slots beyond running + waiting: health probes and refusals being written.
HEADROOM = 16
# A replica that refuses says so in its log at most this often (an overload would flood it otherwise).
WARN_EVERY_S = 60.0

MaxQueuedRequests = Annotated[
    int,
    Field(
        ge=0,
        description="Requests one replica lets wait beyond max_ongoing_requests; beyond that (or after "
        "queue_timeout_s of waiting) a request gets 503 overloaded with Retry-After.",
    ),
]


class AdmissionLimits(BaseModel):
    """One replica's bounds (see the module doc)."""

    max_running: int = Field(ge=1)
    max_waiting: int = Field(ge=0)
    wait_s: float = Field(gt=0)
    retry_after_s: int = Field(ge=1)


class AdmittedDeploymentArgs(ServeDeploymentArgs):
    """Sizing of an app that admits requests itself (agents, A2A faces, MCP servers)."""

    max_queued_requests: MaxQueuedRequests = 64
    queue_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest wait of a queued request before it gets 503 overloaded."
    )
    retry_after_s: int = Field(
        default=5, ge=1, description="Seconds a refused client is told to wait (the Retry-After header)."
    )

    def admission(self) -> AdmissionLimits:
        """The limits each replica enforces."""
        return AdmissionLimits(
            max_running=self.max_ongoing_requests,
            max_waiting=self.max_queued_requests,
            wait_s=self.queue_timeout_s,
            retry_after_s=self.retry_after_s,
        )

    def deployment_options(self) -> dict[str, Any]:
        """Serve's options, with room for the replica's own waiting line (see the module doc)."""
        options = super().deployment_options()
        options["max_ongoing_requests"] = self.max_ongoing_requests + self.max_queued_requests + HEADROOM
        return options


def overloaded(limits: AdmissionLimits, why: str) -> APIError:
    """The 503 of a refused request."""
    return APIError(
        503,
        "overloaded",
        f"this service is at capacity ({why}); retry after {limits.retry_after_s}s",
        headers={"Retry-After": str(limits.retry_after_s)},
    )


class Admission:
    """ASGI middleware enforcing :class:`AdmissionLimits` on every HTTP request but ``exempt_paths``."""

    def __init__(self, app: ASGIApp, limits: AdmissionLimits, exempt_paths: tuple[str, ...] = ("/health",)):
        self.app = app
        self.limits = limits
        self.exempt_paths = frozenset(exempt_paths)
        self._slots = asyncio.Semaphore(limits.max_running)
        self.running = 0  # admitted, not finished
        self.waiting = 0  # in line for a slot
        self.refused = 0  # answered 503 overloaded since start
        self._warned_at = -WARN_EVERY_S

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request now, after a bounded wait, or refuse it with 503 ``overloaded``."""
        if scope["type"] != "http" or relative_path(scope) in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        if self._slots.locked():
            refusal = await self._wait_for_slot()
            if refusal is not None:
                self._refused(refusal)
                await refusal.response()(scope, receive, send)
                return
        else:
            await self._slots.acquire()  # free: returns at once
        self.running += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.running -= 1
            self._slots.release()

    def _refused(self, refusal: APIError) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            logger.warning("overloaded: %s (%d refused since start)", refusal.message, self.refused)

    async def _wait_for_slot(self) -> APIError | None:
        """Take a slot after waiting in line; the refusal when the line is full or the wait runs out."""
        limits = self.limits
        if self.waiting >= limits.max_waiting:
            return overloaded(limits, f"{limits.max_running} running, {self.waiting} waiting")
        self.waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), limits.wait_s)
        except TimeoutError:
            return overloaded(limits, f"no free slot within {limits.wait_s:g}s")
        finally:
            self.waiting -= 1
        return None
