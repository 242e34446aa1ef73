"""The upstream proxy against a real local upstream: the scripted app itself, served on a loopback port."""

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from openai import OpenAI

from llm.scripted.server import create_app as create_scripted_app
from llm.upstream import UpstreamTarget
from llm.upstream import create_app as create_upstream_app
from tests.support.llm import WEATHER_TOOLS
from tests.support.servers import serve_in_thread

MODEL = "scripted-offline-model"


class RecordingHeaders:
    """ASGI wrapper remembering the Authorization header of every request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.authorizations: list[str | None] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            self.authorizations.append(headers.get(b"authorization", b"").decode() or None)
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, RecordingHeaders]]:
    recorder = RecordingHeaders(create_scripted_app())
    with serve_in_thread(recorder) as url:
        yield url, recorder


def proxy_client(target: UpstreamTarget) -> Iterator[OpenAI]:
    with serve_in_thread(create_upstream_app(target)) as url:
        yield OpenAI(base_url=f"{url}/v1", api_key="client-key", max_retries=0)


@pytest.fixture(scope="module")
def proxy(upstream: tuple[str, RecordingHeaders]) -> Iterator[OpenAI]:
    yield from proxy_client(UpstreamTarget(f"{upstream[0]}/v1", api_key="sk-upstream", timeout_s=30))


def test_models_pass_through(proxy: OpenAI) -> None:
    assert [m.id for m in proxy.models.list()] == [MODEL]


def test_completion_with_tools_passes_through_with_the_upstream_key(
    proxy: OpenAI, upstream: tuple[str, RecordingHeaders]
) -> None:
    messages = [{"role": "user", "content": "Weather in Seattle?"}]
    completion = proxy.chat.completions.create(model=MODEL, messages=messages, tools=WEATHER_TOOLS)
    call = completion.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("geocode", {"place": "Seattle"})
    assert upstream[1].authorizations[-1] == "Bearer sk-upstream"


def test_stream_passes_through_chunk_for_chunk(proxy: OpenAI, upstream: tuple[str, RecordingHeaders]) -> None:
    direct = OpenAI(base_url=f"{upstream[0]}/v1", api_key="x", max_retries=0)
    options: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hello there"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    proxied = list(proxy.chat.completions.create(**options))
    expected = list(direct.chat.completions.create(**options))
    assert len(proxied) == len(expected) > 5
    assert [c.choices[0].delta.content for c in proxied if c.choices] == [
        c.choices[0].delta.content for c in expected if c.choices
    ]
    assert proxied[-1].usage == expected[-1].usage


def test_upstream_errors_keep_status_and_body(proxy: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        proxy.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.response.json()["error"]["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.chat.completions.create(model=MODEL, messages=[])
    assert caught.value.response.json()["error"]["param"] == "messages"


def test_pinned_model_rewrites_requests_and_lists_only_itself(upstream: tuple[str, RecordingHeaders]) -> None:
    for client in proxy_client(UpstreamTarget(f"{upstream[0]}/v1", model=MODEL)):
        assert [m.id for m in client.models.list()] == [MODEL]
        completion = client.chat.completions.create(
            model="whatever", messages=[{"role": "user", "content": "hi"}]
        )
        assert completion.model == MODEL
    assert (
        upstream[1].authorizations[-1] == "Bearer client-key"
    )  # no key configured: the caller's goes through


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_upstream_is_a_502_openai_error() -> None:
    for client in proxy_client(UpstreamTarget(f"http://127.0.0.1:{_closed_port()}/v1", timeout_s=5)):
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
            )
        assert caught.value.status_code == 502
        assert caught.value.response.json()["error"]["code"] == "upstream_unavailable"


def _misbehaving_upstream() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(2)
        return {}

    @app.get("/v1/models")
    async def overloaded() -> PlainTextResponse:
        return PlainTextResponse("overloaded, try later", status_code=503)

    return app


def test_timeouts_are_504_and_non_json_errors_are_wrapped() -> None:
    with serve_in_thread(_misbehaving_upstream()) as url:
        for client in proxy_client(UpstreamTarget(f"{url}/v1", timeout_s=0.5)):
            with pytest.raises(openai.APIStatusError) as caught:
                client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
            assert caught.value.status_code == 504
            assert caught.value.response.json()["error"]["code"] == "upstream_timeout"
            with pytest.raises(openai.APIStatusError) as caught:
                client.models.list()
            assert caught.value.status_code == 503
            assert "overloaded" in caught.value.response.json()["error"]["message"]


async def test_invalid_json_and_health_in_process() -> None:
    app = create_upstream_app(UpstreamTarget("http://127.0.0.1:9/v1"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy") as http:
        response = await http.post("/v1/chat/completions", content=b"nope")
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
        health = await http.get("/health")  # nothing listens on port 9
        assert health.status_code == 503 and health.json()["ready"] is False
        assert "unreachable" in health.json()["reason"]


def test_health_is_ready_once_the_upstream_lists_models(upstream: tuple[str, RecordingHeaders]) -> None:
    with serve_in_thread(
        create_upstream_app(UpstreamTarget(f"{upstream[0]}/v1", api_key="sk-upstream"))
    ) as url:
        health = httpx.get(f"{url}/health")
    assert health.status_code == 200
    assert health.json() == {
        "ready": True,
        "backend": "upstream",
        "upstream": f"{upstream[0]}/v1",
        "model": None,
        "config_version": None,  # outside Serve
    }
    assert upstream[1].authorizations[-1] == "Bearer sk-upstream"  # a wrong key would show here


def test_health_is_503_with_the_reason_when_the_upstream_fails() -> None:
    with serve_in_thread(_misbehaving_upstream()) as upstream_url:
        with serve_in_thread(create_upstream_app(UpstreamTarget(f"{upstream_url}/v1"))) as url:
            health = httpx.get(f"{url}/health")
    assert health.status_code == 503
    assert health.json()["ready"] is False and "503" in health.json()["reason"]
