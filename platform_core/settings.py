"""Platform-wide settings, read from the environment in one place.

Every component's builder takes typed args from the Serve config; anything an args model leaves unset
falls back to these settings. That keeps one config file valid on a laptop, in CI (``OFFLINE=1``) and in
production, where the same values arrive as ``runtime_env.env_vars``.
"""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SAMPLE_UPSTREAM_ROUTE = "/sample-upstream"


class PlatformSettings(BaseSettings):
    """Environment variables shared by every app (names are the field names, upper-cased)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    offline: bool = Field(
        default=False,
        description="Offline mode: scripted LLM and the bundled sample upstream server, no internet.",
    )
    serve_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL of the Serve proxy that services use to reach each other.",
    )
    public_base_url: str | None = Field(
        default=None,
        description="Externally visible base URL (A2A agent cards, UI links). Defaults to SERVE_BASE_URL.",
    )
    llm_backend: str | None = Field(
        default=None,
        description="Overrides the llm app's `backend` arg: auto, vllm, upstream or scripted.",
    )
    llm_upstream_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible base URL (ending in /v1) for the `upstream` LLM backend.",
    )
    llm_upstream_api_key: SecretStr | None = Field(
        default=None, description="API key sent to the upstream LLM endpoint."
    )
    llm_upstream_model: str | None = Field(
        default=None,
        description="Pin every upstream request to this model (e.g. gpt-4o-mini); /llm/v1/models "
        "then lists only it.",
    )
    llm_model: str | None = Field(
        default=None,
        description="Model id agents request from /llm; default: the first id /llm/v1/models lists that is "
        "not an embedding, speech, image, moderation or rerank model (a heuristic: set it for a real "
        "provider).",
    )
    llm_api_key: SecretStr | None = Field(
        default=None,
        description="API key agents send to their LLM endpoint; only needed when an agent's "
        "`llm_base_url` points past the platform's own /llm route.",
    )
    brave_api_key: SecretStr | None = Field(
        default=None, description="Brave Search API key of the web search MCP server's brave_search tool."
    )
    log_level: str = Field(
        default="INFO", description="Level of the platform's own loggers (in Serve's log files)."
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="Where conversations, A2A tasks and run claims live, shared by every replica: "
        "`postgresql://user:password@host:5432/db` (pooled), or `sqlite:///path.db`; default: the SQLite "
        "file `DATA_DIR/agents.db` (several replicas on one machine only).",
    )
    data_dir: str = Field(
        default="./data",
        description="Directory of the embedded SQLite database (made absolute when read; give an absolute "
        "path when replicas run from other working directories).",
    )
    retention_days: float | None = Field(
        default=None,
        gt=0,
        description="Chat apps delete threads and A2A tasks untouched for this many days (hourly); "
        "unset keeps everything. One-off: `python -m agent_runtime.state.retention --older-than-days N`.",
    )
    database_pool_size: int = Field(
        default=5, ge=1, le=100, description="Database connections per pool in each replica."
    )

    auth: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Whether every route but health and agent cards needs a credential (API key from "
        "`platform-keys`): `on`, `off`, or `auto` = on when the Serve proxy listens beyond loopback "
        "(`http_options.host`), off on 127.0.0.1 (said in each replica's start-up log).",
    )
    limits_url: SecretStr | None = Field(
        default=None,
        description="Where the per-key request and token counters live, shared by every replica: a Redis "
        "URL (`redis://host:6379/0`), which takes a write per request off the database; default: the "
        "platform database. Unreachable, requests get 503 `storage_unavailable` (limits never fail open).",
    )
    platform_secret: SecretStr | None = Field(
        default=None,
        description="The key (32+ bytes) that signs the platform's internal delegated calls; default: "
        "one made once and kept in the platform database (every replica on it shares it).",
    )

    def url(self, route: str) -> str:
        """The internal URL of a route served by the Serve proxy (``route`` starts with ``/``)."""
        return self.serve_base_url.rstrip("/") + route

    @property
    def sample_upstream_url(self) -> str:
        """Base URL of the bundled sample upstream server (offline mode)."""
        return self.url(SAMPLE_UPSTREAM_ROUTE)

    @property
    def data_path(self) -> Path:
        """``DATA_DIR`` as an absolute path."""
        return Path(self.data_dir).expanduser().resolve()

    @property
    def external_base_url(self) -> str:
        """The base URL callers outside the platform use: ``PUBLIC_BASE_URL``, else ``SERVE_BASE_URL``."""
        return (self.public_base_url or self.serve_base_url).rstrip("/")


@lru_cache(maxsize=1)
def get_settings() -> PlatformSettings:
    """The process-wide settings (cached: the environment of a replica does not change)."""
    return PlatformSettings()
