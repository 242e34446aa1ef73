"""Whether a tool server's upstream APIs answer, for its ``GET /health`` (cached, so probes stay rare).

A tool server whose upstream is down still runs, and restarting it would not help, so Serve's own
replica health check is not involved: ``/health`` says ``ready: false`` (503) and names the upstream,
for monitors and load balancers, and says ready again once it answers. Any HTTP answer below 500 counts
as up (an API's base URL often answers 404): only a refused connection, a timeout or a 5xx is down.
Each replica probes at most once per ``ttl_s``, whatever its health traffic.
"""

import asyncio
import time
from collections.abc import Mapping

import httpx

from platform_core.errors import describe_error

PROBE_TIMEOUT_S = 3.0  # /health must answer quickly even when an upstream hangs
PROBE_TTL_S = 15.0


class UpstreamProbe:
    """Probes ``upstreams`` (name -> URL) with ``GET``; :meth:`down` gives the ones that failed."""

    def __init__(
        self,
        upstreams: Mapping[str, str],
        *,
        ttl_s: float = PROBE_TTL_S,
        timeout_s: float = PROBE_TIMEOUT_S,
    ) -> None:
        self.upstreams = dict(upstreams)
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._down: dict[str, str] = {}
        self._checked_at: float | None = None
        self._lock = asyncio.Lock()

    async def down(self) -> dict[str, str]:
        """Name -> reason of every upstream that failed its last probe (probed again after ``ttl_s``)."""
        if not self.upstreams:
            return {}
        async with self._lock:  # concurrent health requests share one probe
            now = time.monotonic()
            if self._checked_at is None or now - self._checked_at >= self.ttl_s:
                self._down = await self._probe_all()
                self._checked_at = time.monotonic()
            return dict(self._down)

    async def _probe_all(self) -> dict[str, str]:
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client:
            names = list(self.upstreams)
            reasons = await asyncio.gather(*(self._probe(client, self.upstreams[n]) for n in names))
        return {name: reason for name, reason in zip(names, reasons, strict=True) if reason is not None}

    async def _probe(self, client: httpx.AsyncClient, url: str) -> str | None:
        try:
            response = await client.get(url)
        except httpx.TimeoutException:
            return f"GET {url}: no answer within {self.timeout_s:g} s"
        except httpx.HTTPError as exc:
            return f"GET {url}: {describe_error(exc)}"
        if response.status_code >= 500:
            return f"GET {url} answered {response.status_code}"
        return None
