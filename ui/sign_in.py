"""OIDC sign-in for the UI: the authorization code flow with PKCE; the token lands in the tab's key box.

Offered when the UI has an OIDC client (``UI_OIDC_CLIENT_ID``) of the issuer whose tokens the platform
accepts (``OIDC_ISSUER``, ``OIDC_AUDIENCE``: :mod:`identity.oidc`). Two routes under the UI's prefix:

- ``GET auth/login``: a fresh ``state``, ``nonce`` and PKCE verifier go into a short-lived HttpOnly
  cookie (path ``auth``, SameSite=Lax so that the issuer's redirect brings it back), and the browser goes
  to the issuer's ``authorization_endpoint`` with the verifier's S256 challenge.
- ``GET auth/callback``: the ``state`` must be the cookie's; the code is exchanged at the
  ``token_endpoint`` with the verifier (and the client secret, for a confidential client). The ID token
  is verified against the issuer's keys for this client, and its ``nonce`` must be the cookie's; the
  token the UI sends (``UI_OIDC_TOKEN``: the ID token by default) is verified as the agents verify it, so
  a token the platform would refuse is reported here, not at the first chat. A small no-store page then
  puts the token into this tab's ``sessionStorage`` and goes back to the UI, whose load handler moves it
  into the key box and removes it from storage (:data:`TAKE_SIGN_IN_JS`).

So a signed-in tab holds its token as it holds a typed key: in the page only, sent with each of its
events, gone after a reload (sign in again: the issuer's own session makes that one click). Every
failure is a page that says what went wrong and links back to the UI. Tokens are never logged.
"""

import base64
import hashlib
import html
import json
import logging
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from identity import OIDCSettings, OIDCVerifier, Unauthenticated
from ui.config import UISettings

logger = logging.getLogger(__name__)

COOKIE = "ui_sign_in"
COOKIE_MAX_AGE_S = 600
DISCOVERY_TTL_S = 300.0
HTTP_TIMEOUT_S = 10.0
STORAGE_KEY = "ray-agent-platform-ui-sign-in"
"""The ``sessionStorage`` entry that carries the token from the callback page to the UI page."""

# The UI page's load step: take the token the callback left (if any) out of storage, into the key box.
TAKE_SIGN_IN_JS = f"""() => {{
  const raw = sessionStorage.getItem({json.dumps(STORAGE_KEY)});
  sessionStorage.removeItem({json.dumps(STORAGE_KEY)});
  if (!raw) return ["", ""];
  try {{
    const signedIn = JSON.parse(raw);
    return [signedIn.token || "", signedIn.name ? "Signed in as " + signedIn.name + "." : ""];
  }} catch (error) {{
    return ["", ""];
  }}
}}"""

# The "Sign in" button: to auth/login under the page's own path (/ui or /ui/ -> /ui/auth/login).
GO_SIGN_IN_JS = """() => {
  const base = location.pathname.endsWith("/") ? location.pathname : location.pathname + "/";
  location.assign(base + "auth/login");
}"""


class SignInFailed(Exception):
    """A sign-in that cannot go on; the message is shown to the user (it never holds a token)."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


def s256_challenge(verifier: str) -> str:
    """The PKCE S256 challenge of a code verifier (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class PendingSignIn:
    """What the login step leaves in the browser's cookie for the callback to check."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> "PendingSignIn":
        """A sign-in with fresh random values."""
        # a 64-character verifier, within RFC 7636's 43 to 128
        return cls(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48),
        )

    def encode(self) -> str:
        """The cookie value."""
        return base64.urlsafe_b64encode(json.dumps(asdict(self)).encode()).decode("ascii")

    @classmethod
    def decode(cls, raw: str | None) -> "PendingSignIn | None":
        """The sign-in a cookie value holds; None for a missing or unreadable one."""
        if not raw:
            return None
        try:
            fields = json.loads(base64.urlsafe_b64decode(raw.encode("ascii")))
            return cls(
                state=str(fields["state"]), nonce=str(fields["nonce"]), verifier=str(fields["verifier"])
            )
        except (ValueError, KeyError, TypeError):
            return None


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(document, status_code=status_code, headers=headers)


def _script_value(value: Any) -> str:
    """``value`` as a JavaScript literal that is safe inside a ``<script>`` element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class OIDCSignIn:
    """The UI's sign-in routes (see the module docstring); :meth:`install` adds them to the UI's app."""

    def __init__(self, ui: UISettings, oidc: OIDCSettings, *, public_url: str | None = None) -> None:
        if not ui.ui_oidc_client_id:
            raise ValueError("OIDC sign-in needs UI_OIDC_CLIENT_ID")
        if not oidc.issuer or not oidc.audience:
            raise ValueError(
                "UI_OIDC_CLIENT_ID is set but the platform accepts no OIDC tokens: set OIDC_ISSUER and "
                "OIDC_AUDIENCE for every app (the UI signs in at that issuer)"
            )
        self.client_id = ui.ui_oidc_client_id
        self.client_secret = ui.ui_oidc_client_secret
        self.scopes = ui.ui_oidc_scopes
        self.token_kind = ui.ui_oidc_token
        self.issuer = oidc.issuer.rstrip("/")
        self.public_url = public_url
        # The ID token is for this client; the token the UI sends is for the platform's audience.
        self.id_tokens = OIDCVerifier(oidc.model_copy(update={"audience": self.client_id}))
        self.platform = OIDCVerifier(oidc)
        self._http = httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, follow_redirects=False)
        self._endpoints: dict[str, str] = {}
        self._endpoints_at = float("-inf")

    def install(self, app: FastAPI) -> None:
        """Add ``GET /auth/login`` and ``GET /auth/callback`` to ``app`` (before the page is mounted)."""
        app.add_api_route("/auth/login", self.login, methods=["GET"], include_in_schema=False)
        app.add_api_route(
            "/auth/callback", self.callback, methods=["GET"], name="sign_in_callback", include_in_schema=False
        )

    async def aclose(self) -> None:
        """Close the HTTP client towards the issuer."""
        await self._http.aclose()

    # --- routes ---------------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        """Start a sign-in: the cookie, then the issuer's authorization endpoint."""
        try:
            endpoint = (await self._discovery())["authorization_endpoint"]
        except SignInFailed as exc:
            return self._failure(request, exc)
        pending = PendingSignIn.new()
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self._callback_url(request),
            "scope": self.scopes,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": s256_challenge(pending.verifier),
            "code_challenge_method": "S256",
        }
        response = RedirectResponse(str(httpx.URL(endpoint).copy_merge_params(params)), status_code=302)
        response.set_cookie(
            COOKIE,
            pending.encode(),
            max_age=COOKIE_MAX_AGE_S,
            path=self._cookie_path(request),
            secure=self._ui_url(request).startswith("https://"),
            httponly=True,
            samesite="lax",
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    async def callback(self, request: Request) -> Response:
        """Finish a sign-in: check, exchange, verify, then hand the token to the page."""
        try:
            token, name = await self._finish(request)
        except SignInFailed as exc:
            return self._failure(request, exc)
        ui_url = self._ui_url(request)
        signed_in = json.dumps({"token": token, "name": name})
        script = (
            f"sessionStorage.setItem({_script_value(STORAGE_KEY)}, {_script_value(signed_in)});"
            f"location.replace({_script_value(ui_url)});"
        )
        response = _page(
            "Signed in",
            f'<p>Signed in as {html.escape(name)}. Back to <a href="{html.escape(ui_url)}">the UI</a>.</p>'
            f"<script>{script}</script>",
        )
        response.delete_cookie(COOKIE, path=self._cookie_path(request))
        logger.info("UI sign-in of %s", name)
        return response

    # --- the steps --------------------------------------------------------------------------------

    async def _finish(self, request: Request) -> tuple[str, str]:
        query = request.query_params
        if error := query.get("error"):
            detail = query.get("error_description") or ""
            raise SignInFailed(f"The sign-in did not complete: {error}{f' ({detail})' if detail else ''}.")
        pending = PendingSignIn.decode(request.cookies.get(COOKIE))
        state = query.get("state") or ""
        if pending is None or not secrets.compare_digest(state.encode(), pending.state.encode()):
            raise SignInFailed(
                "This sign-in expired or was started in another tab or browser; sign in again."
            )
        code = query.get("code")
        if not code:
            raise SignInFailed("The issuer sent no authorization code; sign in again.")
        tokens = await self._exchange(code, pending, self._callback_url(request))
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed(
                "The issuer sent no ID token (does the client ask for the `openid` scope?).", 502
            )
        try:
            id_claims = await self.id_tokens.claims(id_token)
        except Unauthenticated as exc:
            raise SignInFailed(f"The issuer's ID token did not verify: {exc.message}.", 502) from None
        if not secrets.compare_digest(str(id_claims.get("nonce", "")).encode(), pending.nonce.encode()):
            raise SignInFailed("The ID token is not for this sign-in (nonce mismatch); sign in again.")
        token = tokens.get(self.token_kind)
        if not isinstance(token, str):
            raise SignInFailed(f"The issuer sent no {self.token_kind}.", 502)
        try:
            principal = self.platform.principal(await self.platform.claims(token))
        except Unauthenticated as exc:
            hint = " (OIDC_AUDIENCE must be the UI's client id)" if self.token_kind == "id_token" else ""
            raise SignInFailed(
                f"Signed in, but the platform does not accept the {self.token_kind}: {exc.message}{hint}.",
                403,
            ) from None
        return token, principal.name

    async def _exchange(self, code: str, pending: PendingSignIn, redirect_uri: str) -> dict[str, Any]:
        endpoint = (await self._discovery())["token_endpoint"]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "code_verifier": pending.verifier,
        }
        # client_secret_basic for a confidential client; a public one proves itself with the verifier
        secret = self.client_secret.get_secret_value() if self.client_secret else None
        auth = httpx.BasicAuth(self.client_id, secret) if secret else None
        try:
            response = await self._http.post(
                endpoint,
                data=form,
                auth=auth or httpx.USE_CLIENT_DEFAULT,
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            logger.warning("UI sign-in: the token endpoint is unreachable: %s", type(exc).__name__)
            raise SignInFailed("The sign-in issuer is unreachable; try again later.", 502) from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error", f"HTTP {response.status_code}") if isinstance(body, dict) else "?"
            logger.warning("UI sign-in: the token endpoint refused the code: %s", error)
            raise SignInFailed(f"The issuer refused the sign-in ({error}); sign in again.", 502)
        return body

    async def _discovery(self) -> dict[str, str]:
        """The issuer's endpoints from its openid-configuration (cached for :data:`DISCOVERY_TTL_S`)."""
        if time.monotonic() - self._endpoints_at < DISCOVERY_TTL_S:
            return self._endpoints
        try:
            response = await self._http.get(f"{self.issuer}/.well-known/openid-configuration")
            response.raise_for_status()
            document = response.json()
            endpoints = {k: str(document[k]) for k in ("authorization_endpoint", "token_endpoint")}
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            logger.warning("UI sign-in: the issuer's openid-configuration is unavailable: %s", exc)
            raise SignInFailed("The sign-in issuer is unavailable; try again later.", 502) from None
        self._endpoints, self._endpoints_at = endpoints, time.monotonic()
        return endpoints

    # --- URLs -------------------------------------------------------------------------------------

    def _ui_url(self, request: Request) -> str:
        """The UI page's public URL, with a trailing slash."""
        return (self.public_url or str(request.base_url)).rstrip("/") + "/"

    def _callback_url(self, request: Request) -> str:
        return self._ui_url(request) + "auth/callback"

    def _cookie_path(self, request: Request) -> str:
        return urlsplit(self._ui_url(request)).path + "auth"

    def _failure(self, request: Request, exc: SignInFailed) -> HTMLResponse:
        ui_url = html.escape(self._ui_url(request))
        return _page(
            "Sign-in failed",
            f"<h1>Sign-in failed</h1><p>{html.escape(exc.message)}</p>"
            f'<p><a href="{ui_url}">Back to the UI</a> (an API key works too).</p>',
            status_code=exc.status_code,
        )
