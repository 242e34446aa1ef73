"""OpenAI-style error responses and request parsing: the ``/llm`` backends and the ``/openai`` agents app.

OpenAI clients (``openai``, ``langchain-openai``) read ``{"error": {"message", "type", "param", "code"}}``
and map the HTTP status to an exception class (400 ``BadRequestError``, 404 ``NotFoundError``, 422
``UnprocessableEntityError``, 5xx ``InternalServerError``). Every error of an app that installs these
handlers has that shape, including FastAPI's own 404/405 and validation errors.
"""

import json
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from platform_core.api_errors import BodyTooLarge, decode_json, read_body
from platform_core.api_errors import install_error_handlers as install_platform_error_handlers
from platform_core.errors import PlatformError

# Request bodies above this are refused with 413 before they are parsed: a whole 64K-token conversation
# with its tool schemas is well below 1 MiB of JSON.
MAX_REQUEST_BYTES = 16 * 1024 * 1024

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class OpenAIError(PlatformError):
    """An error to answer in the OpenAI shape.

    Raise it from a route; the handler that :func:`install_error_handlers` adds renders it.
    """

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.type = type or _TYPE_BY_STATUS.get(status_code, "server_error")
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The OpenAI error body, ``{"error": {message, type, param, code}}``."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        """The error as a JSON response with its status (for code that cannot raise, e.g. a stream)."""
        return JSONResponse(self.body(), status_code=self.status_code, headers=self.headers or None)

    def sse_frame(self) -> bytes:
        """The error as one SSE frame, for failures after a stream has started (the status is sent)."""
        return f"data: {json.dumps(self.body())}\n\n".encode()


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; a 400 in the OpenAI shape, or 413 past :data:`MAX_REQUEST_BYTES`."""
    try:
        raw = await read_body(request, MAX_REQUEST_BYTES)
    except BodyTooLarge as exc:
        raise OpenAIError(413, f"The request body is too large: {exc}.", code="request_too_large") from None
    try:
        body = decode_json(raw or b"null")
    except ValueError as exc:  # not JSON, not UTF-8, or nested too deeply
        raise OpenAIError(400, f"The request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise OpenAIError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


def validation_error(exc: ValidationError | RequestValidationError) -> OpenAIError:
    """A 400 naming the first invalid field, like OpenAI answers a malformed request."""
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": str(exc)}
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    message = f"{first.get('msg', 'invalid value')}" + (f" (at '{param}')" if param else "")
    return OpenAIError(400, message, param=param, code="invalid_value")


_CODE_BY_STATUS = {404: "not_found", 405: "method_not_allowed"}


def _from_http(exc: StarletteHTTPException) -> OpenAIError:
    code = _CODE_BY_STATUS.get(exc.status_code, "http_error")
    return OpenAIError(exc.status_code, str(exc.detail), code=code)


def install_error_handlers(app: FastAPI) -> None:
    """Render :class:`OpenAIError`, HTTP errors (404 route, 405) and validation errors in the OpenAI shape."""
    install_platform_error_handlers(app, OpenAIError, from_http=_from_http, from_validation=validation_error)
