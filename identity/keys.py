"""API keys: the secret's format, how it is stored, and the key's record.

A key's secret is ``rap_<key id>_<secret>``: ``<key id>`` (16 hex digits) names the key's row and is not
secret (it shows in ``platform-keys list`` and in logs); ``<secret>`` is 32 random bytes, URL-safe base64.
The database keeps only the SHA-256 of ``<secret>``, compared in constant time
(:func:`hmac.compare_digest`).

Why a plain SHA-256 and not a password hash (bcrypt, scrypt, argon2): those are slow on purpose so that a
stolen table cannot be searched for *guessable* passwords. These secrets are not guessable: 256 bits from
:mod:`secrets`, so inverting the hash is as hopeless as guessing the secret, slow hash or not, while a slow
hash would cost every request milliseconds of CPU on every replica.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from identity.scopes import Principal

TOKEN_PREFIX = "rap"
KEY_ID_BYTES = 8
SECRET_BYTES = 32
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes of URL-safe base64 without padding

KeyStatus = Literal["active", "expired", "revoked"]


@dataclass(frozen=True)
class NewSecret:
    """A freshly made secret: the token to hand out once, and what the database keeps."""

    key_id: str
    token: str
    secret_hash: str


def hash_secret(secret: str) -> str:
    """The stored form of a secret: SHA-256, hex (see the module's docstring for why that suffices)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> NewSecret:
    """A new key id and secret from :mod:`secrets`."""
    key_id = secrets.token_hex(KEY_ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    token = f"{TOKEN_PREFIX}_{key_id}_{secret}"
    return NewSecret(key_id=key_id, token=token, secret_hash=hash_secret(secret))


def parse_token(token: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a token in the platform's format; None for anything else."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")  # the secret may contain "_": split at the first one only
    if prefix != TOKEN_PREFIX or not _KEY_ID.fullmatch(key_id) or not _SECRET.fullmatch(secret):
        return None
    return key_id, secret


def secret_matches(secret: str, secret_hash: str) -> bool:
    """Whether ``secret`` is the one stored as ``secret_hash``, compared in constant time."""
    return hmac.compare_digest(hash_secret(secret).encode(), secret_hash.encode())


@dataclass(frozen=True)
class APIKey:
    """A key's record (never its secret): who it is, what it may do, its limits and its life.

    Times are unix seconds. ``rpm``: requests per minute; ``token_budget``: LLM tokens (prompt and
    completion) per ``budget_window_s``; None means unlimited.
    """

    key_id: str
    name: str
    scopes: tuple[str, ...]
    secret_hash: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    rpm: int | None = None
    token_budget: int | None = None
    budget_window_s: float | None = None

    def status(self, now: float) -> KeyStatus:
        """``revoked`` once revoked, ``expired`` from ``expires_at`` on, else ``active``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    @property
    def principal_id(self) -> str:
        """The id of the principal this key authenticates: ``key:<key id>``."""
        return f"key:{self.key_id}"

    @property
    def principal(self) -> Principal:
        """The principal this key authenticates."""
        return Principal(id=self.principal_id, name=self.name, scopes=frozenset(self.scopes))
