"""Per-key limit counters in Redis (``LIMITS_URL=redis://host:6379/0``), shared by every replica.

Optional: by default the counts live in the platform database (:class:`identity.limits.DatabaseCounters`),
one write per request. With many requests per second, Redis takes those writes instead; the policy
(:class:`identity.limits.Limits`) stays the same. Each count is one Redis key,
``<prefix>:<key id>:<kind>:<window start>``, that expires by itself a while after its window ends, so
nothing needs pruning. Adding below a limit is one Lua script (atomic on the server); adding tokens one
``INCRBY`` + ``EXPIRE`` transaction.

Connections are opened lazily in the event loop that first uses them (a Serve replica's), as every
store of the platform.
"""

import logging
import math
import time
from typing import Any

from identity.errors import LimitsUnavailable
from identity.limits import Window
from identity.store import Clock

logger = logging.getLogger(__name__)

KEY_PREFIX = "platform:limits"
EXPIRY_GRACE_S = 60
"""How long a count outlives its window (a request that read it at the window's end still finds it)."""
CONNECT_TIMEOUT_S = 5.0

# KEYS[1] the count; ARGV[1] the limit, ARGV[2] its time to live in seconds. 1 when added, 0 when full.
_ADD_BELOW = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then
  return 0
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


class RedisCounters:
    """:class:`identity.limits.Counters` on one Redis database."""

    def __init__(self, url: str, *, clock: Clock = time.time, prefix: str = KEY_PREFIX) -> None:
        self.url = url
        self.clock = clock
        self.prefix = prefix
        self._client: Any = None
        self._add_below: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio as redis  # imported where used: only LIMITS_URL=redis://... needs it

            self._client = redis.from_url(
                self.url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
            )
            self._add_below = self._client.register_script(_ADD_BELOW)
        return self._client

    def _name(self, key_id: str, kind: str, window: Window) -> str:
        return f"{self.prefix}:{key_id}:{kind}:{window.start}"

    def _ttl_s(self, window: Window) -> int:
        return max(1, math.ceil(window.end - self.clock())) + EXPIRY_GRACE_S

    async def add_below(self, key_id: str, kind: str, window: Window, limit: int) -> bool:
        """Add 1 to the count unless it has reached ``limit``; whether it was added."""
        self._redis()
        name = self._name(key_id, kind, window)
        added = await _unavailable_as_error(self._add_below(keys=[name], args=[limit, self._ttl_s(window)]))
        return bool(int(added))

    async def add(self, key_id: str, kind: str, window: Window, amount: int) -> int:
        """Add ``amount`` to the count; the new count."""
        name = self._name(key_id, kind, window)
        pipeline = self._redis().pipeline(transaction=True)
        pipeline.incrby(name, amount)
        pipeline.expire(name, self._ttl_s(window))
        total, _ = await _unavailable_as_error(pipeline.execute())
        return int(total)

    async def read(self, key_id: str, kind: str, window: Window) -> int:
        """The count (0 when none was made)."""
        value = await _unavailable_as_error(self._redis().get(self._name(key_id, kind, window)))
        return int(value or 0)

    async def prune(self, cutoff: int) -> int:
        """Nothing to do: every count expires by itself (``EXPIRY_GRACE_S`` after its window)."""
        return 0

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


async def _unavailable_as_error(call: Any) -> Any:
    """Await a Redis call; a server that cannot be reached is :class:`LimitsUnavailable` (a 503)."""
    import redis.exceptions

    try:
        return await call
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        logger.warning("the limits store (LIMITS_URL, Redis) cannot be reached: %s", exc)
        raise LimitsUnavailable() from exc
