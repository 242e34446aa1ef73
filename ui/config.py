"""Typed configuration of the web UI: builder args from the Serve config, secrets from the environment.

The UI reaches agents only through their public HTTP contract (``POST {agent}/chat``, ``GET
{agent}/threads/{id}``), so an agent entry may be a route on the same Serve proxy (``/travel-agent``,
resolved against ``base_url``) or the absolute URL of a remote deployment.
"""

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from platform_core.deployment import MaxOngoingRequests, NumCpus
from platform_core.settings import get_settings


class UISettings(BaseSettings):
    """Environment fallbacks of :class:`UIArgs` secrets (kept out of Serve configs)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    ui_bearer_token: SecretStr | None = Field(
        default=None, description="Bearer token the UI sends to the agents (e.g. an Anyscale service token)."
    )
    ui_oidc_client_id: str | None = Field(
        default=None,
        description="OIDC client of the UI's 'Sign in' (authorization code + PKCE, at `OIDC_ISSUER`); "
        "unset: no sign-in, API keys only.",
    )
    ui_oidc_client_secret: SecretStr | None = Field(
        default=None, description="Secret of a confidential OIDC client; unset for a public client (PKCE)."
    )
    ui_oidc_scopes: str = Field(
        default="openid email profile", description="Scopes the sign-in asks the issuer for."
    )
    ui_oidc_token: Literal["id_token", "access_token"] = Field(
        default="id_token",
        description="Which token of the sign-in the UI sends to the agents; it must be a JWT the platform "
        "accepts (`OIDC_AUDIENCE` = the client id for `id_token`).",
    )

    @property
    def sign_in_enabled(self) -> bool:
        """Whether the UI offers OIDC sign-in (a client id here and an issuer for the platform)."""
        return bool(self.ui_oidc_client_id)


@lru_cache(maxsize=1)
def get_ui_settings() -> UISettings:
    """The UI's environment settings, read once per process."""
    return UISettings()


def _is_absolute_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


class UIArgs(BaseModel):
    """Builder args of the UI app (``args:`` in a Serve config).

    The UI runs as exactly one replica per deployment: Gradio keeps its event queue in process, and a
    browser's queue ``join`` and its result stream must reach the same replica.
    """

    model_config = ConfigDict(extra="forbid")

    agents: dict[str, str] = Field(
        min_length=1,
        description="Display name -> agent route (e.g. /travel-agent) or absolute base URL; the first "
        "entry is preselected.",
    )
    base_url: str | None = Field(
        default=None, description="Base URL that agent routes are resolved against; default SERVE_BASE_URL."
    )
    bearer_token: SecretStr | None = Field(
        default=None, description="Sent as `Authorization: Bearer` to the agents; default UI_BEARER_TOKEN."
    )
    root_path: str | None = Field(
        default=None,
        description="Public path (or full URL) of the UI, e.g. /ui. Default: the ASGI root_path the Serve "
        "proxy passes; set it when a proxy in front rewrites the host (X-Forwarded-Host).",
    )
    title: str = Field(default="Agent platform", description="Page title and heading.")
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Connect timeout towards agents.")
    read_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="Longest silence tolerated on an answer stream (agents send keep-alives while busy).",
    )
    concurrency_limit: int = Field(
        default=64, ge=1, description="Answers streamed at the same time (Gradio's default would be 1)."
    )
    num_cpus: NumCpus = 0.1
    max_ongoing_requests: MaxOngoingRequests = 256

    @field_validator("agents")
    @classmethod
    def _agent_targets(cls, agents: dict[str, str]) -> dict[str, str]:
        for name, target in agents.items():
            if not name.strip():
                raise ValueError("agent display names must not be blank")
            if not (target.startswith("/") or _is_absolute_url(target)):
                raise ValueError(f"agent {name!r}: {target!r} is neither a route (/...) nor an http(s) URL")
        return agents

    def agent_urls(self) -> dict[str, str]:
        """Display name -> the agent's base URL (no trailing slash)."""
        base = (self.base_url or get_settings().serve_base_url).rstrip("/")
        return {
            name: (target if _is_absolute_url(target) else base + target).rstrip("/")
            for name, target in self.agents.items()
        }

    def public_url(self) -> str | None:
        """The UI's public URL when ``root_path`` is one (behind a proxy that rewrites the host)."""
        return self.root_path if self.root_path and _is_absolute_url(self.root_path) else None

    def token(self) -> str | None:
        """The bearer token for agent requests, from the args or ``UI_BEARER_TOKEN``."""
        secret = self.bearer_token or get_ui_settings().ui_bearer_token
        return secret.get_secret_value() if secret else None
