"""The agents' client for the platform LLM: a ``ChatOpenAI`` pointed at ``/llm/v1``.

The ``/llm`` app speaks the OpenAI API whichever backend serves it (vLLM, an upstream provider, the
offline scripted model), so agents need exactly one client. The model id is configured (``LLM_MODEL``)
or discovered from ``GET /v1/models``; discovery retries with backoff because an agent replica may
come up before the LLM app does. A real provider's list also holds embedding, speech, image and
moderation models (often first), so discovery takes the first id that looks like a chat model
(:func:`pick_chat_model`) and fails clearly when none does.

Readiness (:meth:`LLMClient.check`) against the platform's own ``/llm`` route also asks ``/llm/health``:
vLLM's router lists its model before the engine has loaded it.
"""

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from identity.delegation import platform_auth
from platform_core.backoff import Backoff
from platform_core.settings import get_settings
from platform_core.telemetry import TRACE_HOOKS

logger = logging.getLogger(__name__)

LLM_ROUTE = "/llm"
# The platform's /llm route needs no key; the OpenAI client insists on a non-empty one.
_NO_KEY = "not-needed"


# Ids of models that do not serve tool-calling chat completions (OpenAI's embedding, speech, image,
# moderation, realtime and legacy completion models, and rerankers), matched anywhere in the id.
NON_CHAT_MODEL = re.compile(
    r"embed|whisper|tts|audio|speech|dall-e|image|moderation|rerank|transcribe|realtime|search"
    r"|babbage|davinci|sora",
    re.IGNORECASE,
)


class LLMUnavailable(RuntimeError):
    """The LLM endpoint cannot be reached or lists no model."""


class NoChatModel(LLMUnavailable):
    """The endpoint lists models, but none that looks like a chat model; retrying does not help."""


def pick_chat_model(ids: list[str], where: str) -> str:
    """The first of ``ids`` that is not an embedding/speech/image/moderation/... model (see NON_CHAT_MODEL).

    A heuristic over ids, so a pick that skipped models is logged at WARNING with the way to choose.
    """
    chat = [model_id for model_id in ids if not NON_CHAT_MODEL.search(model_id)]
    skipped = [model_id for model_id in ids if NON_CHAT_MODEL.search(model_id)]
    if not chat:
        raise NoChatModel(
            f"{where} lists no chat model ({len(ids)} listed, all embedding/speech/image/moderation-like: "
            f"{', '.join(ids[:10])}{', ...' if len(ids) > 10 else ''}); set LLM_MODEL (or pin the upstream "
            "backend with LLM_UPSTREAM_MODEL) to the chat model to use"
        )
    if skipped:
        logger.warning(
            "%s: picked chat model %r, skipping %d non-chat model(s) listed before or beside it (%s); set "
            "LLM_MODEL (or LLM_UPSTREAM_MODEL) to choose another",
            where,
            chat[0],
            len(skipped),
            ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else ""),
        )
    return chat[0]


def default_llm_base_url() -> str:
    """The platform LLM's OpenAI base URL, through the Serve proxy."""
    return get_settings().url(LLM_ROUTE) + "/v1"


def is_broken_connection(exc: BaseException) -> bool:
    """Whether ``exc`` is a refused, reset or dropped connection (not a timeout, not an answer)."""
    if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
        return False  # the call had its time: another try would double it
    return isinstance(exc, (openai.APIConnectionError, httpx.TransportError))


def _carries_output(chunk: ChatGenerationChunk) -> bool:
    message = chunk.message
    return bool(chunk.text) or bool(isinstance(message, AIMessageChunk) and message.tool_call_chunks)


class RetryingChatOpenAI(ChatOpenAI):
    """``ChatOpenAI`` that calls again when the connection breaks before the answer's first token.

    The OpenAI SDK retries a request that got no answer or a 5xx status (``max_retries``), but not a
    stream that breaks after its headers: what a replica of the LLM app does when a roll-out or a crash
    stops it mid-call. Such a call is repeated (``stream_retries`` times at most, with backoff) only while
    nothing but empty chunks came: once a token or tool call reached the run, a repeat would say it twice,
    so the error goes to the run as before.
    """

    stream_retries: int = 2

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        backoff = Backoff(initial_s=0.5, max_s=4.0)
        for attempt in range(self.stream_retries + 1):
            streamed = False
            try:
                async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
                    streamed = streamed or _carries_output(chunk)
                    yield chunk
                return
            except Exception as exc:
                if streamed or attempt == self.stream_retries or not is_broken_connection(exc):
                    raise
                delay = backoff.next_delay()
                logger.warning(
                    "LLM call: the connection broke before the first token (%s: %s); calling again in %.1fs "
                    "(retry %d of %d)",
                    type(exc).__name__,
                    exc,
                    delay,
                    attempt + 1,
                    self.stream_retries,
                )
                await asyncio.sleep(delay)


def make_chat_model(
    *,
    base_url: str,
    model: str,
    api_key: str | None = None,
    request_timeout_s: float = 120.0,
    connect_timeout_s: float = 5.0,
    max_retries: int = 2,
    stream_retries: int = 2,
    temperature: float | None = None,
    http_async_client: httpx.AsyncClient | None = None,
) -> ChatOpenAI:
    """A streaming ``ChatOpenAI`` that reports token usage (``stream_usage``) for the ``done`` event.

    A refused connection or a 5xx is retried by the SDK (``max_retries``), a stream that breaks before
    its first token by :class:`RetryingChatOpenAI` (``stream_retries``), both with backoff.
    """
    return RetryingChatOpenAI(
        model=model,
        base_url=base_url,
        api_key=SecretStr(api_key or _NO_KEY),
        timeout=httpx.Timeout(request_timeout_s, connect=connect_timeout_s),
        max_retries=max_retries,
        stream_retries=stream_retries,
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
        # The platform's /llm app answers /llm/health for every backend; other endpoints may not.
        platform = self.base_url == default_llm_base_url().rstrip("/")
        self._health_url = self.base_url.removesuffix("/v1") + "/health" if platform else None
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
        self._openai: openai.AsyncOpenAI | None = None
        self._lock: asyncio.Lock | None = None
        self._no_chat_model_logged = False

    @property
    def model_id_if_known(self) -> str | None:
        """The model id, or None while it has not been discovered yet."""
        return self._model_id

    async def model_id(self, *, wait_s: float | None = None) -> str:
        """The configured model id, else the first chat model ``/v1/models`` lists.

        Discovery is retried up to ``wait_s``; a list without any chat model fails at once with
        :class:`NoChatModel`.
        """
        if self._model_id is not None:
            return self._model_id
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._model_id is None:
                self._model_id = await self._discover(self._discovery_timeout_s if wait_s is None else wait_s)
                logger.info(
                    "LLM at %s: using model %r (discovered; LLM_MODEL unset)", self.base_url, self._model_id
                )
        return self._model_id

    async def chat_model(self, *, wait_s: float | None = None) -> ChatOpenAI:
        """The shared chat model (one HTTP connection pool per replica)."""
        if self._chat_model is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self._request_timeout_s, connect=self._connect_timeout_s),
                auth=platform_auth(),  # the platform's /llm only: the run's delegation
                event_hooks=TRACE_HOOKS,  # each call in the run's trace
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

    def openai_client(self) -> openai.AsyncOpenAI:
        """The OpenAI SDK client on the same endpoint, key, timeouts and retries, for other frameworks.

        Agents on a framework other than LangChain (Microsoft Agent Framework) take this client; the model
        id comes from :meth:`model_id`, as for the chat model.
        """
        if self._openai is None:
            self._openai = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._api_key or _NO_KEY,
                timeout=openai.Timeout(self._request_timeout_s, connect=self._connect_timeout_s),
                max_retries=2,
                # An httpx client, as ChatOpenAI hands the SDK (which takes httpx and its own httpx2), for
                # the run's delegation on every call to the platform's /llm.
                http_client=cast(
                    Any,
                    httpx.AsyncClient(
                        timeout=httpx.Timeout(self._request_timeout_s, connect=self._connect_timeout_s),
                        auth=platform_auth(),
                        event_hooks=TRACE_HOOKS,
                    ),
                ),
            )
        return self._openai

    async def aclose(self) -> None:
        """Close the chat model's connection pool, and the OpenAI client's (replica shutdown)."""
        if self._http is not None:
            await self._http.aclose()
        if self._openai is not None:
            await self._openai.close()
        self._http, self._chat_model, self._openai = None, None, None

    async def check(self, timeout_s: float = 3.0) -> bool:
        """Whether the endpoint can serve right now (for ``/health``).

        That is: ``/llm/health`` is ready (platform route only) and ``GET /models`` lists a chat model (or
        the configured one is set).
        """
        try:
            if self._health_url is not None:
                await self._check_platform_health(timeout_s)
            models = await self._list_models(timeout_s)
            if self._model_id is None:
                self._model_id = pick_chat_model(models, f"{self.base_url}/models")
                logger.info(
                    "LLM at %s: using model %r (discovered; LLM_MODEL unset)", self.base_url, self._model_id
                )
        except NoChatModel as exc:
            if not self._no_chat_model_logged:  # /health is polled: say it loudly once, not every poll
                logger.error("LLM health check failed: %s", exc)
                self._no_chat_model_logged = True
            return False
        except (httpx.HTTPError, LLMUnavailable, ValueError) as exc:
            logger.debug("LLM health check failed: %s", exc)
            return False
        return True

    async def _check_platform_health(self, timeout_s: float) -> None:
        assert self._health_url is not None
        # A 503 from /llm/health needs more than the connect timeout: vLLM's probe waits a few seconds.
        async with httpx.AsyncClient(timeout=max(timeout_s, 10.0)) as client:
            response = await client.get(self._health_url)
        if response.status_code != 200:
            raise LLMUnavailable(
                f"GET {self._health_url} answered {response.status_code}: {response.text[:200]}"
            )

    async def _discover(self, wait_s: float) -> str:
        deadline = time.monotonic() + wait_s
        backoff = Backoff(initial_s=0.5, max_s=5.0)
        while True:
            try:
                models = await self._list_models(self._connect_timeout_s + 5)
                return pick_chat_model(models, f"{self.base_url}/models")
            except NoChatModel:
                raise  # the list will not change by waiting
            except (httpx.HTTPError, LLMUnavailable, ValueError) as exc:
                delay = backoff.next_delay()
                if time.monotonic() + delay > deadline:
                    raise LLMUnavailable(f"no model listed at {self.base_url}/models: {exc}") from exc
                logger.info("LLM at %s not ready (%s); retrying in %.1fs", self.base_url, exc, delay)
                await asyncio.sleep(delay)

    async def _list_models(self, timeout_s: float) -> list[str]:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        async with httpx.AsyncClient(timeout=timeout_s, auth=platform_auth()) as client:
            response = await client.get(f"{self.base_url}/models", headers=headers)
        if response.status_code != 200:
            raise LLMUnavailable(f"GET {self.base_url}/models answered {response.status_code}")
        ids = [item["id"] for item in response.json().get("data", []) if item.get("id")]
        if not ids:
            raise LLMUnavailable(f"{self.base_url}/models lists no model")
        return ids
