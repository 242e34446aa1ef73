"""The UI's OIDC sign-in against a real OpenID provider (``oidc-provider-mock``), over loopback HTTP.

The provider is a real authorization server (authlib): it shows a login form, issues codes and RS256 ID
tokens and serves its JWKS; the UI app runs under uvicorn behind a ``/ui`` route prefix, as in Serve.
The browser's part is played by httpx here; tests/ui/test_browser.py does it with Chromium.
"""

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oidc_provider_mock import User, run_server_in_thread

from identity import OIDCSettings, OIDCVerifier
from tests.support.servers import RoutePrefix, ServerThread, closed_port_url
from ui.app import create_ui_app
from ui.config import UIArgs, get_ui_settings
from ui.sign_in import COOKIE, STORAGE_KEY, PendingSignIn

CLIENT_ID = "platform-ui"
# The UI exchanges the code on the server, so it can be a confidential client (the provider here supports
# no public clients); it sends PKCE all the same.
CLIENT_SECRET = "ui-client-secret"
ALICE = User(sub="alice", claims={"email": "alice@example.com", "scope": "agent:weather"})


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    with run_server_in_thread(user_claims=[ALICE]) as server:
        # The provider names itself after the host it is asked by: always ask it as "localhost".
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def ui(issuer: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The UI's base URL (``.../ui/``), signing in at ``issuer`` with the platform's audience = the client."""
    monkeypatch.setenv("OIDC_ISSUER", issuer)
    monkeypatch.setenv("OIDC_AUDIENCE", CLIENT_ID)
    monkeypatch.setenv("UI_OIDC_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("UI_OIDC_CLIENT_SECRET", CLIENT_SECRET)
    yield from _serve_ui()


def _serve_ui() -> Iterator[str]:
    get_ui_settings.cache_clear()
    try:
        app = create_ui_app(UIArgs(agents={"Weather": closed_port_url()}))
        with ServerThread(RoutePrefix(app, "/ui")) as server:
            yield f"{server.url}/ui/"
    finally:
        get_ui_settings.cache_clear()


def sign_in_at_the_provider(http: httpx.Client, authorize_url: str, sub: str = "alice") -> str:
    """What the user does at the provider: open its form and authorize as ``sub``; the callback URL."""
    form = http.get(authorize_url)
    assert form.status_code == 200 and 'name="sub"' in form.text
    answer = http.post(authorize_url, data={"sub": sub})
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def handed_over(page: str) -> dict:
    """The token and name that the callback page puts into the tab's sessionStorage."""
    match = re.search(r"sessionStorage\.setItem\(([^,]+), (\"(?:[^\"\\]|\\.)*\")\)", page)
    assert match, page
    assert json.loads(match.group(1)) == STORAGE_KEY
    return json.loads(json.loads(match.group(2)))


async def test_sign_in_hands_a_token_the_platform_accepts_to_the_page(ui: str, issuer: str) -> None:
    with httpx.Client(timeout=30) as http:
        login = http.get(f"{ui}auth/login")
        assert login.status_code == 302
        authorize = login.headers["location"]
        params = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
        assert authorize.startswith(issuer) and params["client_id"] == CLIENT_ID
        assert params["redirect_uri"] == f"{ui}auth/callback" and params["response_type"] == "code"
        assert "openid" in params["scope"].split()
        # The cookie holds what the callback checks, for the callback's path only.
        cookie = next(c for c in http.cookies.jar if c.name == COOKIE)
        assert cookie.path == "/ui/auth" and cookie.has_nonstandard_attr("HttpOnly")
        pending = PendingSignIn.decode(cookie.value)
        assert pending is not None and params["state"] == pending.state and params["nonce"] == pending.nonce
        digest = hashlib.sha256(pending.verifier.encode()).digest()
        assert params["code_challenge_method"] == "S256"
        assert params["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

        callback = sign_in_at_the_provider(http, authorize)
        assert callback.startswith(f"{ui}auth/callback?")
        page = http.get(callback)
        assert page.status_code == 200, page.text
        assert page.headers["cache-control"] == "no-store"
        assert COOKIE not in http.cookies  # used up
        signed_in = handed_over(page.text)
        assert signed_in["name"] == "alice@example.com"
        assert f"location.replace({json.dumps(ui)})" in page.text

        # The token is one the agents accept: alice, with the scopes the provider gave her.
        principal = await OIDCVerifier(OIDCSettings(issuer=issuer, audience=CLIENT_ID)).verify(
            signed_in["token"]
        )
        assert principal.id == "oidc:alice" and principal.scopes == frozenset({"agent:weather"})
        assert signed_in["token"] not in http.get(ui).text  # the page itself never holds it

        # The same callback again (the code used, the cookie gone) is refused with advice.
        again = http.get(callback)
        assert again.status_code == 400 and "sign in again" in again.text
        assert signed_in["token"] not in again.text


def test_a_callback_of_another_sign_in_or_a_refusal_is_a_clear_page(ui: str) -> None:
    with httpx.Client(timeout=30) as http:
        authorize = http.get(f"{ui}auth/login").headers["location"]
        callback = sign_in_at_the_provider(http, authorize)
        forged = re.sub(r"state=[^&]+", "state=someone-elses", callback)
        page = http.get(forged)
        assert page.status_code == 400 and "another tab or browser" in page.text
        assert "Back to the UI" in page.text and "sessionStorage" not in page.text

        denied = http.get(
            f"{ui}auth/callback", params={"error": "access_denied", "error_description": "<no>"}
        )
        assert denied.status_code == 400 and "access_denied (&lt;no&gt;)" in denied.text


@pytest.fixture
def ui_with_another_audience(issuer: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("OIDC_ISSUER", issuer)
    monkeypatch.setenv("OIDC_AUDIENCE", "platform-api")  # the ID token's audience is the UI's client
    monkeypatch.setenv("UI_OIDC_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("UI_OIDC_CLIENT_SECRET", CLIENT_SECRET)
    yield from _serve_ui()


def test_a_token_the_platform_would_refuse_is_reported_at_sign_in(ui_with_another_audience: str) -> None:
    with httpx.Client(timeout=30) as http:
        authorize = http.get(f"{ui_with_another_audience}auth/login").headers["location"]
        page = http.get(sign_in_at_the_provider(http, authorize))
        assert page.status_code == 403
        assert "does not accept the id_token" in page.text and "OIDC_AUDIENCE" in page.text
        assert "sessionStorage" not in page.text


@pytest.fixture
def ui_with_an_unreachable_issuer(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("OIDC_ISSUER", closed_port_url())
    monkeypatch.setenv("OIDC_AUDIENCE", CLIENT_ID)
    monkeypatch.setenv("UI_OIDC_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("UI_OIDC_CLIENT_SECRET", CLIENT_SECRET)
    yield from _serve_ui()


def test_an_unreachable_issuer_is_a_page_not_a_stack_trace(ui_with_an_unreachable_issuer: str) -> None:
    page = httpx.get(f"{ui_with_an_unreachable_issuer}auth/login", timeout=30)
    assert page.status_code == 502 and "issuer is unavailable" in page.text
    assert "Traceback" not in page.text


def test_sign_in_needs_an_issuer_the_platform_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OIDC_ISSUER", raising=False)
    monkeypatch.setenv("UI_OIDC_CLIENT_ID", CLIENT_ID)
    get_ui_settings.cache_clear()
    try:
        with pytest.raises(ValueError, match="OIDC_ISSUER"):
            create_ui_app(UIArgs(agents={"Weather": closed_port_url()}))
    finally:
        get_ui_settings.cache_clear()


def test_without_a_client_id_there_is_no_sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UI_OIDC_CLIENT_ID", raising=False)
    for base in _serve_ui():
        assert httpx.get(f"{base}auth/login", timeout=30).status_code == 404
        assert 'id="sign-in"' not in httpx.get(base, timeout=30).text
