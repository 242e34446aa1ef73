"""Shared pieces of the fuzz tests (no tests here): hypothesis budget, an in-process ASGI client with a hard
per-request timeout, input strategies and the error-shape properties every HTTP surface must keep.

Budget: each fuzz test runs ``FUZZ_EXAMPLES`` examples (default :data:`DEFAULT_EXAMPLES`, derandomized,
so ``make test`` is short and repeatable); ``make fuzz`` sets ``FUZZ_EXAMPLES=2000`` and random seeds.
Hypothesis' example database lives in ``.pytest_cache/hypothesis`` (ignored by git), never in the repo root.

Apps run in process: :class:`InProcessApp` serves an ASGI app from an event loop of its own (its lifespan
started, as a server would) through ``httpx.ASGITransport``; no socket, no Ray. Each request is bounded by
:data:`REQUEST_TIMEOUT_S`: a hang fails the example that caused it.
"""

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from pydantic import BaseModel
from schemathesis import Case, GenerationMode

from tests.support.paths import REPO_ROOT

FUZZ_EXAMPLES_ENV = "FUZZ_EXAMPLES"
DEFAULT_EXAMPLES = 50
REQUEST_TIMEOUT_S = 10.0
HYPOTHESIS_HOME = REPO_ROOT / ".pytest_cache" / "hypothesis"  # set by tests/conftest.py

T = TypeVar("T")


def fuzz_examples() -> int:
    """Examples per fuzz test: ``FUZZ_EXAMPLES`` if set, else the short default of ``make test``."""
    return int(os.environ.get(FUZZ_EXAMPLES_ENV) or DEFAULT_EXAMPLES)


def long_run() -> bool:
    """Whether this is a ``make fuzz`` run (an explicit budget): random seeds and the example database."""
    return bool(os.environ.get(FUZZ_EXAMPLES_ENV))


def fuzz_settings(scale: float = 1.0) -> settings:
    """Hypothesis settings of a fuzz test; ``scale`` shrinks the budget of an expensive one."""
    return settings(
        max_examples=max(1, int(fuzz_examples() * scale)),
        deadline=None,  # a loaded 2-core machine must not decide the outcome; hangs have REQUEST_TIMEOUT_S
        derandomize=not long_run(),
        database=DirectoryBasedExampleDatabase(str(HYPOTHESIS_HOME / "examples")) if long_run() else None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        print_blob=True,
    )


# --- the in-process ASGI client ------------------------------------------------------------------------


@dataclass
class Reply:
    """A whole response: status, headers, body, and how long it took."""

    status: int
    headers: httpx.Headers
    content: bytes
    elapsed_s: float

    def json(self) -> Any:
        return json.loads(self.content)


class InProcessApp:
    """An ASGI app served from a background event loop, its lifespan started; requests are synchronous.

    Use as a context manager. ``request`` sends one request through ``httpx.ASGITransport`` and returns the
    whole :class:`Reply`, or raises ``TimeoutError`` after ``timeout_s`` (a hang).
    """

    def __init__(
        self, app: Any, *, timeout_s: float = REQUEST_TIMEOUT_S, base_url: str = "http://testserver"
    ):
        self.app = app
        self.timeout_s = timeout_s
        self.base_url = base_url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-app-loop", daemon=True)
        self._client: httpx.AsyncClient | None = None
        self._serving: asyncio.Task[None] | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run ``coro`` on the app's loop; ``TimeoutError`` when it takes longer than ``timeout_s``."""
        limit = timeout_s or self.timeout_s

        async def bounded() -> T:
            async with asyncio.timeout(limit):
                return await coro

        future = asyncio.run_coroutine_threadsafe(bounded(), self.loop)
        try:
            return future.result(limit + 5)
        except TimeoutError:
            future.cancel()
            raise

    def __enter__(self) -> "InProcessApp":
        self.thread.start()
        self._stop = asyncio.Event()

        async def serve(started: asyncio.Future[None]) -> None:
            # One task enters and leaves the lifespan (anyio task groups inside it demand so).
            try:
                async with self.app.router.lifespan_context(self.app):
                    # A failing app answers 500 (as behind a server) instead of raising into the test.
                    transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
                    async with httpx.AsyncClient(transport=transport, base_url=self.base_url) as client:
                        self._client = client
                        started.set_result(None)
                        await self._stop.wait()
            except BaseException as exc:
                if not started.done():
                    started.set_exception(exc)
                raise

        async def start() -> None:
            started = asyncio.get_running_loop().create_future()
            self._serving = asyncio.create_task(serve(started))
            await started

        self.run(start(), timeout_s=60)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self._stop.set()
            if self._serving is not None:
                await self._serving
            current = asyncio.current_task()
            leftovers = [task for task in asyncio.all_tasks() if task is not current]
            for task in leftovers:  # e.g. sse-starlette's shutdown watchers
                task.cancel()
            await asyncio.gather(*leftovers, return_exceptions=True)

        try:
            self.run(stop(), timeout_s=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)

    def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        """One request (``httpx.AsyncClient.request`` keyword arguments), read to its end."""
        assert self._client is not None, "use InProcessApp as a context manager"
        client = self._client

        async def send() -> Reply:
            started = time.monotonic()
            response = await client.request(method, path, **kwargs)
            return Reply(response.status_code, response.headers, response.content, time.monotonic() - started)

        try:
            return self.run(send())
        except TimeoutError:
            raise AssertionError(f"{method} {path} hung: no answer within {self.timeout_s}s") from None


@contextmanager
def in_process(app: Any, **kwargs: Any) -> Iterator[InProcessApp]:
    """:class:`InProcessApp` as a plain context manager (for fixtures)."""
    with InProcessApp(app, **kwargs) as served:
        yield served


def wait_until(check: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    """Poll ``check`` until it holds (e.g. an app's ``/health`` after its warm-up)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s}s")
        time.sleep(0.1)


# --- properties ----------------------------------------------------------------------------------------


def describe(reply: Reply) -> str:
    return f"HTTP {reply.status} {reply.headers.get('content-type')!r}: {reply.content[:300]!r}"


def _error_object(reply: Reply) -> dict[str, Any]:
    assert reply.status < 500, f"server error: {describe(reply)}"
    content_type = reply.headers.get("content-type", "")
    assert content_type.startswith("application/json"), f"error without a JSON body: {describe(reply)}"
    try:
        body = reply.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {describe(reply)}") from None
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), (
        f"no error object: {describe(reply)}"
    )
    error: dict[str, Any] = body["error"]
    assert isinstance(error.get("message"), str) and error["message"], f"no error message: {describe(reply)}"
    return error


def assert_platform_answer(reply: Reply) -> None:
    """No 5xx; every 4xx is ``{"error": {"code": str, "message": str}}`` (the platform's shape)."""
    assert reply.status < 500, f"server error: {describe(reply)}"
    if reply.status >= 400:
        error = _error_object(reply)
        assert isinstance(error.get("code"), str) and error["code"], f"no error code: {describe(reply)}"


def assert_openai_answer(reply: Reply) -> None:
    """No 5xx; every 4xx is OpenAI's ``{"error": {"message", "type", "param", "code"}}`` with a code."""
    assert reply.status < 500, f"server error: {describe(reply)}"
    if reply.status >= 400:
        error = _error_object(reply)
        assert isinstance(error.get("type"), str) and error["type"], f"no error type: {describe(reply)}"
        assert isinstance(error.get("code"), str) and error["code"], f"no error code: {describe(reply)}"


# --- strategies ----------------------------------------------------------------------------------------

# Any JSON value, small: what a careless or hostile client may send where an object is expected.
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

# Text with the characters that break naive code: controls, surrogates' neighbours, RTL marks, NUL.
nasty_text: st.SearchStrategy[str] = st.text(
    st.characters(codec="utf-8") | st.sampled_from(["\x00", "\u202e", "\ufeff", "\n", "\r", '"', "\\", "%"]),
    max_size=60,
)

# Bodies that are not JSON, or barely: empty, binary, truncated, invalid UTF-8, huge numbers, deep nesting.
garbage_bodies: st.SearchStrategy[bytes] = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b"{",
            b"[]",
            b"null",
            b'"just a string"',
            b"\xff\xfe{}",
            b'{"a": NaN}',
            b'{"a": Infinity}',
            b"1e999999",
            b"[" * 5000 + b"]" * 5000,
            b'{"a":' * 3000 + b"1" + b"}" * 3000,
            b'{"x": "\\ud800"}',
        ]
    ),
    json_values.map(lambda value: json.dumps(value).encode()),
)


def json_objects_with(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with some of ``fields`` (each from its strategy or any JSON value) plus stray extra keys."""
    field_values = {name: strategy | json_values for name, strategy in fields.items()}
    return st.fixed_dictionaries({}, optional=field_values).flatmap(
        lambda base: st.dictionaries(st.text(max_size=10), json_values, max_size=2).map(
            lambda extra: {**extra, **base}
        )
    )


# --- schema-driven cases (schemathesis) ----------------------------------------------------------------


def with_json_body(openapi: dict[str, Any], path: str, method: str, model: type[BaseModel]) -> dict[str, Any]:
    """``openapi`` with ``model`` as the JSON request body of one operation.

    Routes that read the raw request (to bound its size and answer their own error shape) have no body in
    FastAPI's generated OpenAPI; this documents the one they parse, so schemathesis generates it.
    """
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components = openapi.setdefault("components", {}).setdefault("schemas", {})
    components.update(schema.pop("$defs", {}))
    openapi["paths"][path][method]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": schema}},
    }
    return openapi


def openapi_cases(openapi: dict[str, Any]) -> st.SearchStrategy[Case]:
    """Every operation of ``openapi``, with valid (positive) and invalid (negative) data."""
    schema = schemathesis.openapi.from_dict(openapi)
    strategies = [
        operation.ok().as_strategy(generation_mode=mode)
        for operation in schema.get_all_operations()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]
    return st.one_of(strategies)


_DROPPED_HEADERS = {"connection", "accept-encoding", "content-length", "host", "transfer-encoding"}


def send_case(served: InProcessApp, case: Case) -> Reply:
    """Send a schemathesis case through ``served``'s in-process client."""
    kwargs = case.as_transport_kwargs(base_url=served.base_url)
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() not in _DROPPED_HEADERS}
    request: dict[str, Any] = {"headers": headers, "params": kwargs.get("params") or None}
    if kwargs.get("cookies"):
        request["cookies"] = kwargs["cookies"]
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        request["content"] = data if isinstance(data, bytes | str) else json.dumps(data)
    path = kwargs["url"].removeprefix(served.base_url) or "/"
    return served.request(kwargs["method"], path, **request)
