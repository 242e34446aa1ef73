"""HTTP errors of the platform's own apps: raised as one type, rendered by one handler per app.

Routes ``raise APIError(409, "thread_busy", "...")`` and return only results; the handler that
:func:`install_api_error_handlers` adds renders ``{"error": {"code": ..., "message": ...}}`` with the
status (and any headers, e.g. ``Retry-After``). Starlette's own 404/405 and FastAPI's request validation
errors get the same body, so a client parses one error shape from every route. (The ``/llm`` app answers
in the OpenAI shape instead: :mod:`llm.errors`.)
"""

from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def validation_message(exc: ValidationError | RequestValidationError) -> str:
    """``"field: problem; ..."`` of a pydantic validation error, without echoing the input."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid value')}")
    return "; ".join(parts)


class RenderedError(Protocol):
    """An exception that knows its HTTP answer (:class:`APIError`, ``llm.errors.OpenAIError``)."""

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
