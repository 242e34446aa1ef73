"""HTTP errors of the platform's own apps: raised as one type, rendered by one handler per app.

Routes ``raise APIError(409, "thread_busy", "...")`` and return only results; the handler that
:func:`install_api_error_handlers` adds renders ``{"error": {"code": ..., "message": ...}}`` with the
status (and any headers, e.g. ``Retry-After``). Starlette's own 404/405 and FastAPI's request validation
errors get the same body, so a client parses one error shape from every route. (The ``/llm`` app answers
in the OpenAI shape instead: :mod:`platform_core.openai_errors`.)
"""

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_core.errors import PlatformError

_CODE_BY_STATUS = {404: "not_found", 405: "method_not_allowed"}


class APIError(PlatformError):
    """An error answer of an HTTP route: status, a stable machine-readable code and a message."""

    def __init__(
        self, status_code: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body every platform route answers an error with."""
        return {"error": {"code": self.code, "message": self.message}}

    def response(self) -> JSONResponse:
        """The error as a response (for code that cannot raise, e.g. a middleware)."""
        return JSONResponse(self.body(), status_code=self.status_code, headers=self.headers or None)


class BodyTooLarge(PlatformError):
    """A request body over the route's limit (answered 413 before any of it is processed)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"request body over {max_bytes} bytes")
        self.max_bytes = max_bytes


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, read at most ``max_bytes`` far: :class:`BodyTooLarge` past that.

    A ``Content-Length`` over the limit is refused before anything is read; a chunked body without one is
    refused as soon as it grows past the limit, so an endless body cannot hold the route.
    """
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise BodyTooLarge(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise BodyTooLarge(max_bytes)
    return bytes(body)


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def decode_json(raw: bytes) -> Any:
    r"""``json.loads`` of a request body that fails with ``ValueError`` only, whatever the bytes.

    ``json.loads`` raises ``RecursionError`` (not a ``ValueError``) on deeply nested input such as
    ``[[[[...]]]]`` a few thousand levels deep; a route that catches only decode errors would answer 500.
    ``NaN`` and ``Infinity`` are refused: they are not JSON (RFC 8259); so are strings with an unpaired
    surrogate escape (``"\ud800"`` in the JSON text), which are no Unicode text (RFC 7493). A body holding
    either could not be sent on: ``httpx`` and UTF-8 encoders refuse it.
    """
    try:
        value = json.loads(raw, parse_constant=_not_json)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if _SURROGATE_ESCAPE.search(raw):  # rare: only then is the value checked for unpaired surrogates
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise ValueError("JSON string holds an unpaired UTF-16 surrogate (not Unicode text)") from None
    return value


def validation_message(exc: ValidationError | RequestValidationError) -> str:
    """``"field: problem; ..."`` of a pydantic validation error, without echoing the input."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid value')}")
    return "; ".join(parts)


class RenderedError(Protocol):
    """An exception that knows its HTTP answer (:class:`APIError`, ``openai_errors.OpenAIError``)."""

    def response(self) -> JSONResponse:
        """The error as a response."""
        ...


def install_error_handlers(
    app: FastAPI,
    error_type: type[Exception],
    *,
    from_http: Callable[[StarletteHTTPException], RenderedError],
    from_validation: Callable[[RequestValidationError], RenderedError],
) -> None:
    """One handler per kind of failure, for an app whose errors have their own shape.

    ``error_type`` (raised by routes) renders itself; Starlette's HTTP errors (unknown route, wrong method)
    and FastAPI's request validation errors are first turned into that shape by ``from_http`` and
    ``from_validation``.
    """

    async def on_error(_: Request, exc: Exception) -> JSONResponse:
        rendered: RenderedError
        if isinstance(exc, StarletteHTTPException):
            rendered = from_http(exc)
        elif isinstance(exc, RequestValidationError):
            rendered = from_validation(exc)
        else:
            rendered = cast(RenderedError, exc)
        return rendered.response()

    for handled in (error_type, StarletteHTTPException, RequestValidationError):
        app.add_exception_handler(handled, on_error)


def _api_error_from_http(exc: StarletteHTTPException) -> APIError:
    code = _CODE_BY_STATUS.get(exc.status_code, "http_error")
    return APIError(exc.status_code, code, str(exc.detail), headers=exc.headers)


def _api_error_from_validation(exc: RequestValidationError) -> APIError:
    return APIError(422, "invalid_request", validation_message(exc))


def install_api_error_handlers(app: FastAPI) -> None:
    """Render :class:`APIError`, HTTP errors (unknown route, wrong method) and validation errors."""
    install_error_handlers(
        app, APIError, from_http=_api_error_from_http, from_validation=_api_error_from_validation
    )


def request_too_large(max_bytes: int) -> APIError:
    """The 413 of a body over ``max_bytes``."""
    return APIError(413, "request_too_large", str(BodyTooLarge(max_bytes)))


class RequestBodyLimit:
    """ASGI middleware: a body over ``max_bytes`` gets 413 ``request_too_large`` before the app sees it.

    The answer is the platform's JSON error. For apps whose routes read the body themselves (a2a-sdk's,
    mcp's): a ``Content-Length`` over the limit is refused at once; any other body is read up to the limit,
    then handed to the app whole. ``check(scope, body)`` may answer a body the app would choke on itself.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        check: Callable[[Scope, bytes], Response | None] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse an over-large body, else pass the request on with its body read."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending its body
                return
            body.extend(message.get("body", b""))
            if len(body) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        refusal = self.check(scope, bytes(body)) if self.check is not None else None
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response: Response = request_too_large(self.max_bytes).response()
        await response(scope, receive, send)


def relative_path(scope: Scope) -> str:
    """The request path below the app's route prefix (Serve puts the prefix in ``root_path``)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives the app ``messages`` (read already), then the client's later ones."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the whole body read already, then the client's later messages."""
    return replay([{"type": "http.request", "body": body, "more_body": False}], receive)


async def http_error_response(_: StarletteRequest, exc: Exception) -> Response:
    """Starlette's own HTTP errors (unknown route, wrong method) in the platform's JSON shape.

    For a plain Starlette app: ``Starlette(exception_handlers={HTTPException: http_error_response})``.
    """
    assert isinstance(exc, StarletteHTTPException)
    return _api_error_from_http(exc).response()
