"""Optional OIDC: a bearer JWT from a configured issuer, verified against its JWKS, as a principal.

Configured by ``OIDC_ISSUER`` (and ``OIDC_AUDIENCE``; see :class:`OIDCSettings`). A token is accepted
only when all of this holds:

- its header's ``alg`` is in the allow-list (``OIDC_ALGORITHMS``, asymmetric only by default: never
  ``none``, never an HMAC the issuer's public key could be abused for);
- its signature verifies with the issuer's key of its ``kid``, from the JWKS (``OIDC_JWKS_URL``, else the
  ``jwks_uri`` of ``<issuer>/.well-known/openid-configuration``), cached for :data:`JWKS_TTL_S` and
  fetched again for an unknown ``kid`` at most every :data:`JWKS_MIN_REFRESH_S` (a token without a
  ``kid`` is verified with the issuer's key only while its JWKS holds exactly one);
- ``iss`` is the issuer, ``aud`` holds the audience, ``exp`` is in the future (``nbf``/``iat`` not too),
  with :data:`LEEWAY_S` for clock skew; ``sub`` is present.

Its principal is ``oidc:<sub>``, named by ``OIDC_NAME_CLAIM`` (default ``email``, else ``sub``), with the
platform scopes found in ``OIDC_SCOPES_CLAIM`` (default ``scope``: a space-separated string or a list;
values that are not platform scopes, such as ``openid``, are ignored). Limits (requests per minute,
token budgets) belong to API keys; an OIDC principal has usage, no key limits.
"""

import asyncio
import logging
import time
from typing import Any

import httpx
import jwt
from jwt import PyJWK, PyJWKSet
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from identity.errors import Unauthenticated
from identity.scopes import Principal, parse_scope

logger = logging.getLogger(__name__)

JWKS_TTL_S = 300.0
JWKS_MIN_REFRESH_S = 30.0
LEEWAY_S = 30.0
FETCH_TIMEOUT_S = 10.0
INVALID = "invalid token"
DEFAULT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


class OIDCSettings(BaseSettings):
    """``OIDC_*`` environment variables; OIDC is off while ``OIDC_ISSUER`` is unset."""

    model_config = SettingsConfigDict(env_prefix="OIDC_", extra="ignore", case_sensitive=False)

    issuer: str | None = Field(default=None, description="The issuer (`iss`) whose JWTs are accepted.")
    audience: str | None = Field(default=None, description="The audience (`aud`) tokens must hold.")
    jwks_url: str | None = Field(
        default=None, description="The issuer's JWKS; default: `jwks_uri` of its openid-configuration."
    )
    algorithms: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALGORITHMS), description="Allowed `alg` values."
    )
    scopes_claim: str = Field(default="scope", description="Claim with the platform scopes.")
    name_claim: str = Field(default="email", description="Claim that names the principal (else `sub`).")

    @property
    def enabled(self) -> bool:
        """Whether OIDC tokens are accepted."""
        return bool(self.issuer)


def looks_like_jwt(token: str) -> bool:
    """A compact JWS (three dot-separated parts), not a platform key."""
    return token.count(".") == 2 and not token.startswith("rap")


def _scopes(value: Any) -> frozenset[str]:
    items = value.split() if isinstance(value, str) else value if isinstance(value, list) else []
    scopes = set()
    for item in items:
        try:
            scopes.add(parse_scope(str(item)))
        except ValueError:
            continue  # openid, email, profile, another service's scopes
    return frozenset(scopes)


class OIDCVerifier:
    """Verifies bearer JWTs of one issuer (see the module docstring)."""

    def __init__(self, settings: OIDCSettings, *, clock: Any = time.time) -> None:
        if not settings.issuer or not settings.audience:
            raise ValueError("OIDC needs OIDC_ISSUER and OIDC_AUDIENCE")
        unsafe = [alg for alg in settings.algorithms if alg.lower() == "none" or alg.upper().startswith("HS")]
        if unsafe:
            raise ValueError(f"OIDC_ALGORITHMS must be asymmetric; refused: {unsafe}")
        self.settings = settings
        self.clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _jwks_url(self, http: httpx.AsyncClient) -> str:
        if self.settings.jwks_url:
            return self.settings.jwks_url
        issuer = str(self.settings.issuer).rstrip("/")
        response = await http.get(f"{issuer}/.well-known/openid-configuration")
        response.raise_for_status()
        return str(response.json()["jwks_uri"])

    async def _refresh(self) -> None:
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False) as http:
            response = await http.get(await self._jwks_url(http))
            response.raise_for_status()
            keys = PyJWKSet.from_dict(response.json())
        self._keys = {key.key_id or "": key for key in keys.keys}
        self._fetched_at = time.monotonic()

    def _lookup(self, kid: str | None) -> PyJWK | None:
        if kid is None:  # a token without `kid` (optional in JWS): only an issuer with one key is unambiguous
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _key(self, kid: str | None) -> PyJWK:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if age > JWKS_TTL_S or (self._lookup(kid) is None and age > JWKS_MIN_REFRESH_S):
                try:
                    await self._refresh()
                except (httpx.HTTPError, ValueError, KeyError, jwt.PyJWTError) as exc:
                    logger.warning("OIDC: the issuer's keys could not be fetched: %s", exc)
                    if not self._keys:
                        raise Unauthenticated(
                            "the token issuer's keys are unavailable; try again later"
                        ) from None
        key = self._lookup(kid)
        if key is None:
            raise Unauthenticated(INVALID)
        return key

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token; raises :class:`Unauthenticated` (one message for most faults)."""
        return self.principal(await self.claims(token))

    def principal(self, claims: dict[str, Any]) -> Principal:
        """The principal that a valid token's claims name (see the module docstring)."""
        subject = str(claims["sub"])
        name = claims.get(self.settings.name_claim)
        return Principal(
            id=f"oidc:{subject}"[:192],
            name=str(name if isinstance(name, str) and name else subject)[:128],
            scopes=_scopes(claims.get(self.settings.scopes_claim)),
        )

    async def claims(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; raises :class:`Unauthenticated` like :meth:`verify`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated(INVALID) from None
        kid = header.get("kid")
        if header.get("alg") not in self.settings.algorithms or not isinstance(kid, str | None):
            raise Unauthenticated(INVALID)
        key = await self._key(kid)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=self.settings.algorithms,
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("this token has expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated(INVALID) from None
        return dict(claims)
