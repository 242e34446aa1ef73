"""The ``upstream`` backend: the OpenAI API proxied to any OpenAI-compatible endpoint.

``/v1/models`` and ``/v1/chat/completions`` go to the endpoint (OpenAI, a remote vLLM, ...) with the
upstream's API key added. ``GET /health`` is ready once the upstream answers ``GET /models`` (so a wrong
URL or key shows there).

Streams pass through chunk by chunk. Upstream errors keep their status and body (bodies that are not
OpenAI-shaped JSON are wrapped into that shape); an unreachable upstream answers 502, a timeout 504,
and a stream that breaks after it started ends with an OpenAI-style ``error`` frame (the OpenAI client
raises ``APIError`` on it).
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve

from llm.access import guard_llm_app
from platform_core.api_errors import decode_json
from platform_core.config_version import with_config_version
from platform_core.openai_errors import OpenAIError, install_error_handlers, read_json_object
from platform_core.settings import get_settings

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
HEALTH_TIMEOUT_S = 5.0  # /health must answer quickly even when the upstream hangs


@dataclass(frozen=True)
class UpstreamTarget:
    """Where the proxy sends requests, with which key, pinned to which model, with what read timeout."""

    base_url: str  # ends in /v1
    api_key: str | None = None
    model: str | None = None  # pin every request to this model
    timeout_s: float = 300.0


def _upstream_failure(exc: httpx.HTTPError, target: UpstreamTarget) -> OpenAIError:
    if isinstance(exc, httpx.TimeoutException):
        return OpenAIError(
            504,
            f"The upstream LLM at {target.base_url} timed out ({type(exc).__name__}, {target.timeout_s:g}s).",
            code="upstream_timeout",
        )
    return OpenAIError(
        502, f"The upstream LLM at {target.base_url} is unreachable: {exc!r}", code="upstream_unavailable"
    )


def _error_passthrough(status: int, content: bytes, content_type: str) -> Response:
    """An upstream error answer, as is when it is already OpenAI-shaped JSON, else wrapped into that shape."""
    try:
        body = decode_json(content)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict | str):
        return Response(content, status_code=status, media_type=content_type or "application/json")
    text = content.decode(errors="replace").strip()[:500] or f"HTTP {status}"
    return OpenAIError(
        status, f"Upstream LLM error: {text}", type="upstream_error", code=str(status)
    ).response()


class _Proxy:
    """The proxy's routes over one ``httpx.AsyncClient``, created on first use (in the serving event loop)."""

    def __init__(self, target: UpstreamTarget) -> None:
        self._target = target
        self._base = target.base_url.rstrip("/")
        self._client: httpx.AsyncClient | None = None

    def http(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = httpx.Timeout(
                self._target.timeout_s, connect=min(CONNECT_TIMEOUT_S, self._target.timeout_s)
            )
            self._client = httpx.AsyncClient(timeout=timeout)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def headers(self, request: Request) -> dict[str, str]:
        out = {"Accept": request.headers.get("accept", "application/json")}
        if self._target.api_key:
            out["Authorization"] = f"Bearer {self._target.api_key}"
        elif "authorization" in request.headers:  # no key configured: the caller's own key goes through
            out["Authorization"] = request.headers["authorization"]
        return out

    async def health(self, request: Request) -> JSONResponse:
        target, base = self._target, self._base
        body: dict[str, object] = await with_config_version(
            {"ready": False, "backend": "upstream", "upstream": base, "model": target.model}
        )
        try:
            response = await self.http().get(
                f"{base}/models",
                headers=self.headers(request),
                timeout=min(HEALTH_TIMEOUT_S, target.timeout_s),
            )
        except httpx.HTTPError as exc:
            body["reason"] = _upstream_failure(exc, target).message
            return JSONResponse(body, status_code=503)
        if response.status_code >= 400:
            body["reason"] = f"GET {base}/models answered {response.status_code}: {response.text[:200]}"
            return JSONResponse(body, status_code=503)
        body["ready"] = True
        return JSONResponse(body)

    async def list_models(self, request: Request) -> Response:
        model = self._target.model
        try:
            response = await self.http().get(f"{self._base}/models", headers=self.headers(request))
        except httpx.HTTPError as exc:
            raise _upstream_failure(exc, self._target) from exc
        content_type = response.headers.get("content-type", "")
        if response.status_code >= 400:
            return _error_passthrough(response.status_code, response.content, content_type)
        if model is None:
            return Response(response.content, status_code=response.status_code, media_type=content_type)
        listed = [m for m in response.json().get("data", []) if m.get("id") == model]
        card = listed[0] if listed else {"id": model, "object": "model", "created": 0, "owned_by": "upstream"}
        return JSONResponse({"object": "list", "data": [card]})

    async def chat_completions(self, request: Request) -> Response:
        body = await read_json_object(request)
        if self._target.model is not None:
            body["model"] = self._target.model
        upstream_request = self.http().build_request(
            "POST", f"{self._base}/chat/completions", json=body, headers=self.headers(request)
        )
        try:
            response = await self.http().send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            raise _upstream_failure(exc, self._target) from exc
        if response.status_code >= 400 or not body.get("stream"):
            return await self._whole(response)
        return self._stream(response)

    async def _whole(self, response: httpx.Response) -> Response:
        """An upstream answer read to its end: an error passed through, or a non-streamed completion."""
        content_type = response.headers.get("content-type", "")
        try:
            content = await response.aread()
        except httpx.HTTPError as exc:
            raise _upstream_failure(exc, self._target) from exc
        finally:
            await response.aclose()
        if response.status_code >= 400:
            logger.warning("upstream answered %d: %s", response.status_code, content[:300])
            return _error_passthrough(response.status_code, content, content_type)
        return Response(content, status_code=response.status_code, media_type=content_type or None)

    def _stream(self, response: httpx.Response) -> StreamingResponse:
        """A streamed completion passed through chunk by chunk; a break ends it with an error frame."""

        async def passthrough() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_bytes():
                    yield chunk
            except httpx.HTTPError as exc:
                logger.warning("upstream stream broke: %r", exc)
                yield _upstream_failure(exc, self._target).sse_frame()
            finally:
                await response.aclose()

        return StreamingResponse(
            passthrough(),
            status_code=response.status_code,
            media_type=response.headers.get("content-type", "") or "text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )


def create_app(target: UpstreamTarget) -> FastAPI:
    """The proxy's ASGI app; usable without Ray."""
    proxy = _Proxy(target)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await proxy.aclose()

    app = FastAPI(title="OpenAI-compatible proxy to an upstream LLM", lifespan=lifespan)
    install_error_handlers(app)

    @app.get("/health", response_model=None)
    async def health(request: Request) -> JSONResponse:
        """Ready once the upstream answers ``GET /models`` with our key: a wrong URL or key shows here."""
        return await proxy.health(request)

    @app.get("/v1/models", response_model=None)
    async def list_models(request: Request) -> Response:
        """The upstream's models; only the pinned one when ``model`` is set (listed or not)."""
        return await proxy.list_models(request)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> Response:
        """The completion from the upstream (pinned to ``model`` when set), streamed through if asked."""
        return await proxy.chat_completions(request)

    return app


class UpstreamLLMReplica:
    """One replica of the proxy (a CPU replica).

    A key not given in the builder args is read from the replica's own environment
    (``LLM_UPSTREAM_API_KEY``), so secrets from the environment never enter the app graph.
    """

    def __init__(self, base_url: str, api_key: str | None, model: str | None, timeout_s: float) -> None:
        if api_key is None and (key := get_settings().llm_upstream_api_key) is not None:
            api_key = key.get_secret_value()
        self._target = UpstreamTarget(base_url, api_key, model, timeout_s)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return guard_llm_app(create_app(self._target))


# The decorators as calls: mypy ignores what a class decorator returns, and this is a Deployment.
UpstreamLLM: serve.Deployment = serve.deployment(name="UpstreamLLM")(serve.ingress()(UpstreamLLMReplica))
"""The ``UpstreamLLM`` deployment; the ``/llm`` builder sets its sizing and target."""
