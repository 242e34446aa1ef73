"""Scopes, principals and the key's secret: format, hashing, constant-time comparison, status."""

import hashlib
import hmac

import pytest

from identity import keys
from identity.keys import APIKey, hash_secret, new_secret, parse_token, secret_matches
from identity.scopes import Principal, parse_scope, scope_allows


def test_scopes_are_checked_and_wildcards_cover_their_family() -> None:
    for scope in ("agent:weather", "agent:*", "llm", "mcp:web-search", "mcp:*", "admin"):
        assert parse_scope(f" {scope} ") == scope
    for bad in ("", "agent", "agent:", "agent:we ather", "mcp:-x", "llm:*", "tools:x", "*", "Admin"):
        with pytest.raises(ValueError):
            parse_scope(bad)

    assert scope_allows("agent:*", "agent:travel")
    assert scope_allows("agent:travel", "agent:travel")
    assert not scope_allows("agent:travel", "agent:weather")
    assert not scope_allows("agent:*", "mcp:weather")
    assert not scope_allows("mcp:*", "llm")
    assert not scope_allows("llm", "agent:travel")
    assert all(scope_allows("admin", s) for s in ("agent:x", "llm", "mcp:y", "admin"))


def test_a_principal_allows_what_one_of_its_scopes_allows() -> None:
    alice = Principal.of("key:1", "alice", ["agent:travel", "llm"])
    assert alice.allows("agent:travel") and alice.allows("llm")
    assert not alice.allows("agent:weather") and not alice.allows("admin") and not alice.is_admin
    assert Principal.of("key:2", "ops", ["admin"]).is_admin
    with pytest.raises(ValueError):
        Principal.of("key:3", "x", ["everything"])


def test_secrets_have_the_platforms_format_and_only_their_hash_is_kept() -> None:
    made = new_secret()
    prefix, key_id, secret = made.token.split("_", 2)
    assert prefix == "rap" and key_id == made.key_id and len(key_id) == 16
    assert parse_token(made.token) == (made.key_id, secret)
    assert made.secret_hash == hashlib.sha256(secret.encode()).hexdigest() == hash_secret(secret)
    assert secret not in made.secret_hash
    assert new_secret().token != made.token

    for bad in (
        "",
        "rap",
        f"sk_{key_id}_{secret}",
        f"rap_{key_id}",
        f"rap_{key_id[:-1]}_{secret}",
        f"rap_{key_id}_{secret[:-1]}",
        f"rap_{key_id}_{secret} ",
        f"rap_{key_id.upper()}_{secret}",
    ):
        assert parse_token(bad) is None, bad


def test_secrets_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    made = new_secret()
    _, _, secret = made.token.split("_", 2)
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    assert secret_matches(secret, made.secret_hash)
    assert not secret_matches(secret[::-1], made.secret_hash)
    assert len(calls) == 2 and all(b == made.secret_hash.encode() for _, b in calls)


def test_a_key_is_revoked_or_expired_from_then_on() -> None:
    key = APIKey("0" * 16, "k", ("llm",), "h", created_at=100.0, expires_at=200.0)
    assert key.status(199.9) == "active" and key.status(200.0) == "expired"
    assert APIKey("0" * 16, "k", ("llm",), "h", created_at=100.0, revoked_at=150.0).status(120) == "revoked"
    assert key.principal == Principal(id="key:" + "0" * 16, name="k", scopes=frozenset({"llm"}))
