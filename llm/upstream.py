"""The ``upstream`` backend: ``/v1/models`` and ``/v1/chat/completions`` proxied to any OpenAI-compatible
endpoint (OpenAI, a remote vLLM, ...), with the upstream's API key added.
``GET /health`` is ready once the upstream answers ``GET /models`` (so a wrong URL or key shows there).

Streams pass through chunk by chunk. Upstream errors keep their status and body (bodies that are not
OpenAI-shaped JSON are wrapped into that shape); an unreachable upstream answers 502, a timeout 504,
and a stream that breaks after it started ends with an OpenAI-style ``error`` frame (the OpenAI client
raises ``APIError`` on it).
"""

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve

from llm.errors import OpenAIError, install_error_handlers, read_json_object
from platform_core.settings import get_settings

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
HEALTH_TIMEOUT_S = 5.0  # /health must answer quickly even when the upstream hangs


@dataclass(frozen=True)
class UpstreamTarget:
    base_url: str  # ends in /v1
    api_key: str | None = None
    model: str | None = None  # pin every request to this model
    timeout_s: float = 300.0


class _Client:
    """One ``httpx.AsyncClient`` per app, created on first use (in the serving event loop)."""

    def __init__(self, target: UpstreamTarget) -> None:
        self._target = target
        self._client: httpx.AsyncClient | None = None

    def get(self) -> httpx.AsyncClient:
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
        body = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict | str):
        return Response(content, status_code=status, media_type=content_type or "application/json")
    text = content.decode(errors="replace").strip()[:500] or f"HTTP {status}"
    return OpenAIError(
        status, f"Upstream LLM error: {text}", type="upstream_error", code=str(status)
    ).response()


def create_app(target: UpstreamTarget) -> FastAPI:
    """The proxy's ASGI app; usable without Ray."""
    client = _Client(target)
    base = target.base_url.rstrip("/")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = FastAPI(title="OpenAI-compatible proxy to an upstream LLM", lifespan=lifespan)
    install_error_handlers(app)

    def headers(request: Request) -> dict[str, str]:
        out = {"Accept": request.headers.get("accept", "application/json")}
        if target.api_key:
            out["Authorization"] = f"Bearer {target.api_key}"
        elif "authorization" in request.headers:  # no key configured: the caller's own key goes through
            out["Authorization"] = request.headers["authorization"]
        return out

    @app.get("/health", response_model=None)
    async def health(request: Request) -> JSONResponse:
        """Ready once the upstream answers ``GET /models`` with our key: a wrong URL or key shows here."""
        body: dict[str, object] = {
            "ready": False,
            "backend": "upstream",
            "upstream": base,
            "model": target.model,
        }
        try:
            response = await client.get().get(
                f"{base}/models", headers=headers(request), timeout=min(HEALTH_TIMEOUT_S, target.timeout_s)
            )
        except httpx.HTTPError as exc:
            body["reason"] = _upstream_failure(exc, target).message
            return JSONResponse(body, status_code=503)
        if response.status_code >= 400:
            body["reason"] = f"GET {base}/models answered {response.status_code}: {response.text[:200]}"
            return JSONResponse(body, status_code=503)
        body["ready"] = True
        return JSONResponse(body)

    @app.get("/v1/models", response_model=None)
    async def list_models(request: Request) -> Response:
        try:
            response = await client.get().get(f"{base}/models", headers=headers(request))
        except httpx.HTTPError as exc:
            raise _upstream_failure(exc, target) from exc
        content_type = response.headers.get("content-type", "")
        if response.status_code >= 400:
            return _error_passthrough(response.status_code, response.content, content_type)
        if target.model is None:
            return Response(response.content, status_code=response.status_code, media_type=content_type)
        listed = [m for m in response.json().get("data", []) if m.get("id") == target.model]
        card = (
            listed[0]
            if listed
            else {"id": target.model, "object": "model", "created": 0, "owned_by": "upstream"}
        )
        return JSONResponse({"object": "list", "data": [card]})

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> Response:
        body = await read_json_object(request)
        if target.model is not None:
            body["model"] = target.model
        upstream_request = client.get().build_request(
            "POST", f"{base}/chat/completions", json=body, headers=headers(request)
        )
        try:
            response = await client.get().send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            raise _upstream_failure(exc, target) from exc
        content_type = response.headers.get("content-type", "")
        if response.status_code >= 400 or not body.get("stream"):
            try:
                content = await response.aread()
            except httpx.HTTPError as exc:
                raise _upstream_failure(exc, target) from exc
            finally:
                await response.aclose()
            if response.status_code >= 400:
                logger.warning("upstream answered %d: %s", response.status_code, content[:300])
                return _error_passthrough(response.status_code, content, content_type)
            return Response(content, status_code=response.status_code, media_type=content_type or None)

        async def passthrough() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_bytes():
                    yield chunk
            except httpx.HTTPError as exc:
                logger.warning("upstream stream broke: %r", exc)
                yield _upstream_failure(exc, target).sse_frame()
            finally:
                await response.aclose()

        return StreamingResponse(
            passthrough(),
            status_code=response.status_code,
            media_type=content_type or "text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    return app


@serve.deployment(name="UpstreamLLM")
@serve.ingress()
class UpstreamLLM:
    """The proxy on CPU replicas. A key not given in the builder args is read from the replica's own
    environment (``LLM_UPSTREAM_API_KEY``), so secrets from the environment never enter the app graph."""

    def __init__(self, base_url: str, api_key: str | None, model: str | None, timeout_s: float) -> None:
        if api_key is None and (key := get_settings().llm_upstream_api_key) is not None:
            api_key = key.get_secret_value()
        self._target = UpstreamTarget(base_url, api_key, model, timeout_s)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self._target)
