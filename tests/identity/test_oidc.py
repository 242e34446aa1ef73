"""OIDC bearer JWTs against a real issuer on loopback (its openid-configuration and JWKS served over HTTP),
with keys the test makes: what is accepted, what is refused, and the principal a token becomes."""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from identity import oidc as oidc_module
from identity.errors import Forbidden, Unauthenticated
from identity.oidc import OIDCSettings, OIDCVerifier, looks_like_jwt
from identity.service import IdentityService
from tests.support.servers import ServerThread

AUDIENCE = "ray-agent-platform"


class Issuer:
    """An OIDC issuer: signing keys (rotatable) and the two documents a verifier reads."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.rotate()
        self.server = ServerThread(
            Starlette(
                routes=[
                    Route("/.well-known/openid-configuration", self.configuration),
                    Route("/jwks", self.jwks),
                ]
            )
        )

    @property
    def url(self) -> str:
        return self.server.url

    def rotate(self) -> str:
        kid = f"key-{len(self.keys) + 1}"
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = kid
        return kid

    async def configuration(self, _: Request) -> JSONResponse:
        return JSONResponse({"issuer": self.url, "jwks_uri": f"{self.url}/jwks"})

    async def jwks(self, _: Request) -> JSONResponse:
        keys = []
        for kid, key in self.keys.items():
            public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**public, "kid": kid, "use": "sig", "alg": "RS256"})
        return JSONResponse({"keys": keys})

    def token(self, kid: str | None = None, *, with_kid: bool = True, **overrides: Any) -> str:
        now = time.time()
        claims = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "user-42",
            "email": "ada@example.com",
            "scope": "openid email agent:travel llm",
            "iat": now,
            "exp": now + 300,
        } | overrides
        claims = {name: value for name, value in claims.items() if value is not None}
        kid = kid or self.kid
        return jwt.encode(
            claims, self.keys[kid], algorithm="RS256", headers={"kid": kid} if with_kid else None
        )


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    made = Issuer()
    with made.server:
        yield made


def verifier_for(issuer: Issuer, **settings: Any) -> OIDCVerifier:
    return OIDCVerifier(OIDCSettings(issuer=issuer.url, audience=AUDIENCE, **settings))


async def test_a_valid_token_is_its_subject_with_its_platform_scopes(issuer: Issuer) -> None:
    principal = await verifier_for(issuer).verify(issuer.token())  # keys found by discovery
    assert principal.id == "oidc:user-42" and principal.name == "ada@example.com"
    assert principal.scopes == {"agent:travel", "llm"}, "openid and email are not platform scopes"
    assert principal.allows("agent:travel") and not principal.allows("agent:weather")
    assert not principal.delegated
    listed = await verifier_for(issuer, jwks_url=f"{issuer.url}/jwks").verify(issuer.token(scope=["mcp:*"]))
    assert listed.scopes == {"mcp:*"}, "a list claim works too"


async def test_a_token_without_kid_needs_an_issuer_with_one_key(issuer: Issuer) -> None:
    verifier = verifier_for(issuer)
    assert (await verifier.verify(issuer.token(with_kid=False))).id == "oidc:user-42"
    issuer.rotate()  # two keys now: which one signed a token without kid is ambiguous
    verifier = verifier_for(issuer)
    with pytest.raises(Unauthenticated):
        await verifier.verify(issuer.token(with_kid=False))
    assert (await verifier.verify(issuer.token())).id == "oidc:user-42"


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "another-service"},
        {"iss": "https://evil.example"},
        {"exp": time.time() - 3600},
        {"nbf": time.time() + 3600},
        {"sub": None},
    ],
    ids=["audience", "issuer", "expired", "not-yet-valid", "no-subject"],
)
async def test_a_token_with_wrong_claims_is_401(issuer: Issuer, overrides: dict[str, Any]) -> None:
    with pytest.raises(Unauthenticated) as refused:
        await verifier_for(issuer).verify(issuer.token(**overrides))
    assert refused.value.status_code == 401


async def test_forged_tokens_are_401(issuer: Issuer) -> None:
    verifier = verifier_for(issuer)
    good = issuer.token()
    head, body, signature = good.split(".")
    tampered = f"{head}.{body}.{signature[:-4]}AAAA"
    unsigned = jwt.encode(
        {"iss": issuer.url, "aud": AUDIENCE, "sub": "x", "exp": time.time() + 60}, None, "none"
    )
    # HS256 "signed" with the issuer's public key: the classic algorithm-confusion attack.
    public_pem = (
        issuer.keys[issuer.kid]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    confused = _hs256(public_pem, issuer)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = jwt.encode(
        {"iss": issuer.url, "aud": AUDIENCE, "sub": "x", "exp": time.time() + 60},
        other_key,
        algorithm="RS256",
        headers={"kid": issuer.kid},
    )
    for token in (tampered, unsigned, confused, stranger, "a.b.c"):
        with pytest.raises(Unauthenticated):
            await verifier.verify(token)


def _hs256(secret: bytes, issuer: Issuer) -> str:
    """An HS256 token whose HMAC key is the issuer's public key (PyJWT refuses to make one itself)."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"iss": issuer.url, "aud": AUDIENCE, "sub": "x", "exp": time.time() + 60}
    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': issuer.kid})}.{part(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


async def test_a_rotated_key_is_fetched_when_a_token_names_it(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = verifier_for(issuer)
    await verifier.verify(issuer.token())
    new_kid = issuer.rotate()
    monkeypatch.setattr(oidc_module, "JWKS_MIN_REFRESH_S", 0.0)
    principal = await verifier.verify(issuer.token(kid=new_kid))
    assert principal.id == "oidc:user-42"


def test_symmetric_or_no_algorithms_cannot_be_allowed() -> None:
    for algorithms in (["HS256"], ["RS256", "none"]):
        with pytest.raises(ValueError, match="asymmetric"):
            OIDCVerifier(OIDCSettings(issuer="https://id.example", audience=AUDIENCE, algorithms=algorithms))
    with pytest.raises(ValueError, match="OIDC_AUDIENCE"):
        OIDCVerifier(OIDCSettings(issuer="https://id.example"))


def test_only_compact_jws_looks_like_a_jwt() -> None:
    assert (
        looks_like_jwt("a.b.c") and not looks_like_jwt("rap_0123456789abcdef_x") and not looks_like_jwt("a.b")
    )


async def test_the_identity_service_takes_oidc_tokens_beside_keys(issuer: Issuer, tmp_path: Path) -> None:
    async with IdentityService(f"sqlite:///{tmp_path / 'agents.db'}", oidc=verifier_for(issuer)) as identity:
        caller = await identity.identify({"authorization": f"Bearer {issuer.token()}"}, "agent:travel")
        assert caller.principal.id == "oidc:user-42" and caller.key is None and caller.delegation is None
        with pytest.raises(Forbidden):
            await identity.identify({"authorization": f"Bearer {issuer.token()}"}, "agent:weather")
        # Its runs delegate as any caller's do.
        delegation = await identity.delegate(caller, 60)
        hop = await identity.identify({"authorization": f"Bearer {delegation}"}, "agent:weather")
        assert hop.principal.id == "oidc:user-42" and hop.principal.delegated
        _, key = await identity.keys.create("beside-oidc", ["llm"])
        assert (await identity.identify({"authorization": f"Bearer {key}"}, "llm")).key is not None
