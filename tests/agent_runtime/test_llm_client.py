"""The agents' LLM client against real loopback servers: which model it picks, and when it is ready.

A real provider's ``/v1/models`` (OpenAI's, for one) lists embedding, speech, image and moderation models
beside the chat ones, often first; the upstream backend passes that list through when no model is pinned.
"""

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI, Request

from agent_runtime.llm_client import (
    LLMClient,
    NoChatModel,
    is_broken_connection,
    make_chat_model,
    pick_chat_model,
)
from llm.scripted.server import create_app as create_scripted_app
from llm.upstream import UpstreamTarget
from llm.upstream import create_app as create_upstream_app
from llm.vllm_health import vllm_health
from platform_core.settings import get_settings
from tests.support.servers import RoutePrefix, serve_in_thread

CHAT_MODEL = "scripted-offline-model"
NON_CHAT = ["text-embedding-3-small", "whisper-1", "tts-1-hd", "omni-moderation-latest", "dall-e-3"]


class ProviderDouble:
    """An OpenAI-like provider: ``/v1/models`` lists ``ids`` in that order; chat is the scripted model."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.model_list_requests = 0
        self.app = FastAPI()

        @self.app.get("/v1/models")
        async def models() -> dict[str, Any]:
            self.model_list_requests += 1
            return {
                "object": "list",
                "data": [{"id": i, "object": "model", "owned_by": "x"} for i in self.ids],
            }

        self.app.mount("/", create_scripted_app(CHAT_MODEL))  # /v1/chat/completions, /health


@pytest.fixture
def platform_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("LLM_MODEL", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


async def test_upstream_without_a_pinned_model_gets_the_first_chat_model(
    platform_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    provider = ProviderDouble([*NON_CHAT, CHAT_MODEL, "gpt-4o-mini"])
    with serve_in_thread(provider.app) as provider_url:
        with serve_in_thread(create_upstream_app(UpstreamTarget(f"{provider_url}/v1"))) as proxy_url:
            client = LLMClient(f"{proxy_url}/v1", discovery_timeout_s=5)
            with caplog.at_level(logging.INFO, logger="agent_runtime.llm_client"):
                assert await client.model_id() == CHAT_MODEL
                answer = await (await client.chat_model()).ainvoke("Who are you?")
            await client.aclose()
    assert "offline" in str(answer.content)
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert CHAT_MODEL in warning and "text-embedding-3-small" in warning and "LLM_MODEL" in warning
    assert any("using model" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


async def test_a_list_without_a_chat_model_fails_at_once_with_the_fix(
    platform_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    provider = ProviderDouble(NON_CHAT)
    with serve_in_thread(provider.app) as url:
        client = LLMClient(f"{url}/v1", discovery_timeout_s=60)
        with pytest.raises(NoChatModel, match="LLM_MODEL") as caught:
            await client.model_id()
        assert provider.model_list_requests == 1, "no retries: the list does not change by waiting"
        assert "text-embedding-3-small" in str(caught.value)
        with caplog.at_level(logging.ERROR, logger="agent_runtime.llm_client"):
            assert await client.check() is False
            assert await client.check() is False
    assert len([r for r in caplog.records if "no chat model" in r.getMessage()]) == 1, "logged once"
    assert client.model_id_if_known is None


async def test_a_configured_model_is_used_without_asking(platform_env: pytest.MonkeyPatch) -> None:
    provider = ProviderDouble(NON_CHAT)
    with serve_in_thread(provider.app) as url:
        platform_env.setenv("LLM_MODEL", "my-chat-model")
        get_settings.cache_clear()
        assert await LLMClient(f"{url}/v1").model_id() == "my-chat-model"
        assert await LLMClient(f"{url}/v1", model="other").model_id() == "other"
    assert provider.model_list_requests == 0


def test_pick_chat_model_keeps_the_order_of_the_list() -> None:
    assert pick_chat_model(["text-embedding-ada-002", "gpt-4o", "gpt-4o-mini"], "x") == "gpt-4o"
    assert pick_chat_model(["Qwen/Qwen3-4B-Instruct-2507-FP8"], "x") == "Qwen/Qwen3-4B-Instruct-2507-FP8"
    for non_chat in (
        "BAAI/bge-reranker-v2-m3",
        "gpt-4o-transcribe",
        "gpt-4o-realtime-preview",
        "gpt-image-1",
    ):
        with pytest.raises(NoChatModel):
            pick_chat_model([non_chat], "x")


def _platform_llm(state: dict[str, bool]) -> FastAPI:
    """What /llm serves on vLLM: the model is listed at once, /health is 503 until the engine answers."""
    app = FastAPI()

    async def engine() -> None:
        if not state["loaded"]:
            raise RuntimeError("still loading weights")

    @app.get("/health", response_model=None)
    async def health(_: Request) -> Any:
        return await vllm_health("qwen", engine)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "qwen", "object": "model"}]}

    return app


async def test_readiness_on_the_platform_route_waits_for_llm_health(platform_env: pytest.MonkeyPatch) -> None:
    state = {"loaded": False}
    with serve_in_thread(RoutePrefix(_platform_llm(state), "/llm")) as url:
        platform_env.setenv("SERVE_BASE_URL", url)
        get_settings.cache_clear()
        client = LLMClient()  # the platform's own /llm/v1
        assert client.base_url == f"{url}/llm/v1"
        assert await client.check() is False
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/llm/v1/models")).status_code == 200  # listed anyway
        state["loaded"] = True
        assert await client.check() is True
        assert client.model_id_if_known == "qwen"


async def test_readiness_elsewhere_needs_only_the_model_list(platform_env: pytest.MonkeyPatch) -> None:
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]}

    with serve_in_thread(app) as url:  # no /health here, as on a provider's API
        client = LLMClient(f"{url}/v1")
        assert await client.check() is True
        assert client.model_id_if_known == "gpt-4o-mini"


# --- a connection that breaks mid-call ----------------------------------------------------------------


class BreakingStreams:
    """The scripted model behind a connection that breaks: the k-th call passes ``keep[k]`` body chunks
    (each one SSE event), then the server drops the connection (a replica stopped mid-call)."""

    def __init__(self, keep: list[int]) -> None:
        self.keep = keep
        self.calls = 0
        self.app = create_scripted_app(CHAT_MODEL)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            await self.app(scope, receive, send)
            return
        self.calls += 1
        if not self.keep:
            await self.app(scope, receive, send)
            return
        keep, passed = self.keep.pop(0), 0

        async def cut(message) -> None:
            nonlocal passed
            if message["type"] == "http.response.body" and message.get("body"):
                if passed >= keep:
                    raise ConnectionResetError("the replica went away")
                passed += 1
            await send(message)

        await self.app(scope, receive, cut)


async def streamed_answer(url: str) -> str:
    model = make_chat_model(base_url=f"{url}/v1", model=CHAT_MODEL)
    return "".join([chunk.text async for chunk in model.astream("Say something about the weather.")])


async def test_a_call_whose_stream_breaks_before_its_first_token_is_made_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with serve_in_thread(create_scripted_app(CHAT_MODEL)) as url:
        expected = await streamed_answer(url)
    # Broken right after the headers, then after a first chunk that carries no text (the role): retried.
    server = BreakingStreams(keep=[0, 1])
    with serve_in_thread(server) as url, caplog.at_level(logging.WARNING, "agent_runtime.llm_client"):
        assert await streamed_answer(url) == expected
    assert server.calls == 3
    retries = [r.getMessage() for r in caplog.records if "before the first token" in r.getMessage()]
    assert len(retries) == 2 and "retry 2 of 2" in retries[1]


async def test_a_stream_that_broke_after_tokens_is_not_repeated() -> None:
    server = BreakingStreams(keep=[4])
    with serve_in_thread(server) as url:
        with pytest.raises((httpx.TransportError, openai.APIConnectionError)):
            await streamed_answer(url)
    assert server.calls == 1  # the tokens already reached the run: a repeat would say them twice


async def test_retries_are_bounded() -> None:
    server = BreakingStreams(keep=[0, 0, 0, 0])
    with serve_in_thread(server) as url:
        with pytest.raises((httpx.TransportError, openai.APIConnectionError)):
            await streamed_answer(url)
    assert server.calls == 3  # the first call and stream_retries (2) more


def test_timeouts_are_not_broken_connections() -> None:
    request = httpx.Request("POST", "http://llm/v1/chat/completions")
    assert is_broken_connection(httpx.RemoteProtocolError("peer closed connection", request=request))
    assert is_broken_connection(openai.APIConnectionError(request=request))
    assert not is_broken_connection(httpx.ReadTimeout("slow", request=request))
    assert not is_broken_connection(openai.APITimeoutError(request=request))
    assert not is_broken_connection(ValueError("bad JSON"))
