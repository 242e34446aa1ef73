"""The verifier: a bearer token in, the key it authenticates out (else 401 ``Unauthenticated``).

Each replica keeps the key records it read for a short TTL (2 s by default, never more than
:data:`MAX_CACHE_TTL_S` = 5 s), so a busy route does not read the database on every request while a key
revoked anywhere stops working on every replica within that TTL. The cache holds records, never a
verdict: the secret is checked against the stored hash on every request (constant time), and expiry
against the clock. Unknown key ids are cached too (as absent), so a flood of made-up tokens costs one
read per id and TTL; the cache is bounded (least recently used out).
"""

import logging
import time
from collections import OrderedDict

from identity.errors import Unauthenticated
from identity.keys import APIKey, parse_token, secret_matches
from identity.store import Clock, KeyStore
from platform_core.errors import ConfigurationError

logger = logging.getLogger(__name__)

MAX_CACHE_TTL_S = 5.0
DEFAULT_CACHE_TTL_S = 2.0
DEFAULT_CACHE_ENTRIES = 10_000

# One message for every token that does not verify: a caller cannot tell an unknown key id from a
# wrong secret (and so cannot learn which key ids exist).
INVALID = "invalid API key"


class Verifier:
    """Verifies API keys against a :class:`~identity.store.KeyStore`, with a short per-replica cache."""

    def __init__(
        self,
        keys: KeyStore,
        *,
        cache_ttl_s: float = DEFAULT_CACHE_TTL_S,
        clock: Clock = time.monotonic,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
    ) -> None:
        if not 0 <= cache_ttl_s <= MAX_CACHE_TTL_S:
            raise ConfigurationError(
                f"the key cache TTL must be 0..{MAX_CACHE_TTL_S} s (a revoked key must stop working "
                f"within 5 s); got {cache_ttl_s}"
            )
        self.keys = keys
        self.cache_ttl_s = cache_ttl_s
        self.clock = clock
        self.max_entries = max_entries
        self._cache: OrderedDict[str, tuple[float, APIKey | None]] = OrderedDict()

    async def verify(self, token: str) -> APIKey:
        """The active key ``token`` is the secret of; raises :class:`Unauthenticated` otherwise.

        Revoked and expired keys are named as such only to the holder of the right secret.
        """
        parsed = parse_token(token)
        if parsed is None:
            raise Unauthenticated("malformed API key: expected rap_<key id>_<secret>")
        key_id, secret = parsed
        key = await self._record(key_id)
        if key is None or not secret_matches(secret, key.secret_hash):
            raise Unauthenticated(INVALID)
        status = key.status(self.keys.clock())
        if status != "active":
            logger.info("refused %s key %s (%s)", status, key.key_id, key.name)
            raise Unauthenticated(f"this API key is {status}")
        return key

    async def active_key(self, key_id: str) -> APIKey:
        """The key ``key_id`` if it is still active (a delegated hop acting for it); else 401.

        No secret is checked: the caller holds a delegation the platform signed for this key. A key
        revoked or expired since the flow began stops its hops within the cache's TTL.
        """
        key = await self._record(key_id)
        if key is None:
            raise Unauthenticated(INVALID)
        status = key.status(self.keys.clock())
        if status != "active":
            raise Unauthenticated(f"the API key this call acts for is {status}")
        return key

    def forget(self, key_id: str | None = None) -> None:
        """Drop the cached record of ``key_id`` (of every key: None), e.g. right after revoking here."""
        if key_id is None:
            self._cache.clear()
        else:
            self._cache.pop(key_id, None)

    async def _record(self, key_id: str) -> APIKey | None:
        now = self.clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self.cache_ttl_s:
            self._cache.move_to_end(key_id)
            return cached[1]
        key = await self.keys.get(key_id)
        if self.cache_ttl_s > 0:
            self._cache[key_id] = (now, key)
            self._cache.move_to_end(key_id)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return key
