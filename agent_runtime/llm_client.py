"""The agents' client for the platform LLM: a ``ChatOpenAI`` pointed at ``/llm/v1``.

The ``/llm`` app speaks the OpenAI API whichever backend serves it (vLLM, an upstream provider, the
offline scripted model), so agents need exactly one client. The model id is configured (``LLM_MODEL``)
or discovered from ``GET /v1/models``; discovery retries with backoff because an agent replica may
come up before the LLM app does.
"""

import asyncio
import logging
import time

import httpx
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from platform_core.backoff import Backoff
from platform_core.settings import get_settings

logger = logging.getLogger(__name__)

LLM_ROUTE = "/llm"
# The platform's /llm route needs no key; the OpenAI client insists on a non-empty one.
_NO_KEY = "not-needed"


class LLMUnavailable(RuntimeError):
    """The LLM endpoint cannot be reached or lists no model."""


def default_llm_base_url() -> str:
    """The platform LLM's OpenAI base URL, through the Serve proxy."""
    return get_settings().url(LLM_ROUTE) + "/v1"


def make_chat_model(
    *,
    base_url: str,
    model: str,
    api_key: str | None = None,
    request_timeout_s: float = 120.0,
    connect_timeout_s: float = 5.0,
    max_retries: int = 1,
    temperature: float | None = None,
    http_async_client: httpx.AsyncClient | None = None,
) -> ChatOpenAI:
    """A streaming ``ChatOpenAI`` that reports token usage (``stream_usage``) for the ``done`` event."""
    return ChatOpenAI(
        model=model,
        base_url=base_url,
        api_key=SecretStr(api_key or _NO_KEY),
        timeout=httpx.Timeout(request_timeout_s, connect=connect_timeout_s),
        max_retries=max_retries,
        stream_usage=True,
        temperature=temperature,
        http_async_client=http_async_client,
    )


class LLMClient:
    """One replica's LLM connection: resolves the model id once, then hands out the same chat model."""

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        request_timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        discovery_timeout_s: float = 30.0,
        temperature: float | None = None,
    ) -> None:
        settings = get_settings()
        self.base_url = (base_url or default_llm_base_url()).rstrip("/")
        self._configured_model = model or settings.llm_model
        if api_key is None and settings.llm_api_key is not None:
            api_key = settings.llm_api_key.get_secret_value()
        self._api_key = api_key
        self._request_timeout_s = request_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._discovery_timeout_s = discovery_timeout_s
        self._temperature = temperature
        self._model_id: str | None = self._configured_model
        self._chat_model: ChatOpenAI | None = None
        self._http: httpx.AsyncClient | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def model_id_if_known(self) -> str | None:
        """The model id, or None while it has not been discovered yet."""
        return self._model_id

    async def model_id(self, *, wait_s: float | None = None) -> str:
        """The configured model id, else the first id ``/v1/models`` lists (retried up to ``wait_s``)."""
        if self._model_id is not None:
            return self._model_id
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._model_id is None:
                self._model_id = await self._discover(self._discovery_timeout_s if wait_s is None else wait_s)
                logger.info("LLM at %s: using model %r", self.base_url, self._model_id)
        return self._model_id

    async def chat_model(self, *, wait_s: float | None = None) -> ChatOpenAI:
        """The shared chat model (one HTTP connection pool per replica)."""
        if self._chat_model is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self._request_timeout_s, connect=self._connect_timeout_s)
            )
            self._chat_model = make_chat_model(
                base_url=self.base_url,
                model=await self.model_id(wait_s=wait_s),
                api_key=self._api_key,
                request_timeout_s=self._request_timeout_s,
                connect_timeout_s=self._connect_timeout_s,
                temperature=self._temperature,
                http_async_client=self._http,
            )
        return self._chat_model

    async def aclose(self) -> None:
        """Close the chat model's connection pool (replica shutdown)."""
        if self._http is not None:
            await self._http.aclose()
        self._http, self._chat_model = None, None

    async def check(self, timeout_s: float = 3.0) -> bool:
        """Whether the endpoint answers ``GET /models`` right now (for ``/health``)."""
        try:
            models = await self._list_models(timeout_s)
        except (httpx.HTTPError, LLMUnavailable, ValueError) as exc:
            logger.debug("LLM health check failed: %s", exc)
            return False
        if self._model_id is None:
            self._model_id = models[0]
        return True

    async def _discover(self, wait_s: float) -> str:
        deadline = time.monotonic() + wait_s
        backoff = Backoff(initial_s=0.5, max_s=5.0)
        while True:
            try:
                return (await self._list_models(self._connect_timeout_s + 5))[0]
            except (httpx.HTTPError, LLMUnavailable, ValueError) as exc:
                delay = backoff.next_delay()
                if time.monotonic() + delay > deadline:
                    raise LLMUnavailable(f"no model listed at {self.base_url}/models: {exc}") from exc
                logger.info("LLM at %s not ready (%s); retrying in %.1fs", self.base_url, exc, delay)
                await asyncio.sleep(delay)

    async def _list_models(self, timeout_s: float) -> list[str]:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(f"{self.base_url}/models", headers=headers)
        if response.status_code != 200:
            raise LLMUnavailable(f"GET {self.base_url}/models answered {response.status_code}")
        ids = [item["id"] for item in response.json().get("data", []) if item.get("id")]
        if not ids:
            raise LLMUnavailable(f"{self.base_url}/models lists no model")
        return ids
