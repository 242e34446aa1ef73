"""ASGI middleware that puts an app behind its :class:`~identity.gate.AuthGate`, whatever the framework.

The ``/llm`` app (FastAPI or Ray Serve LLM's ingress) and the MCP servers (the MCP SDK's Starlette app)
are not ours to route, so their door is a middleware: every HTTP request but the public paths needs the
scope, and the caller is left in ``scope["state"]["caller"]``::

    app.add_middleware(RequireScope, gate=gate, scope="mcp:weather")

``delegate_ttl_s`` also leaves the delegation for the hops the request makes in
``scope["state"]["delegation"]`` (:func:`delegation_of`; an A2A app's runs). ``meter_tokens=True``
(the ``/llm`` app) also counts the LLM tokens each answer reports (its ``usage``,
in the JSON body or in a streamed chunk: agents ask for it with ``stream_options.include_usage``)
against the caller's key budget and in its usage: that is where the tokens of every hop of a delegated
flow are counted, once.
"""

import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from identity.gate import AuthGate
from identity.service import Caller
from platform_core.api_errors import APIError, relative_path, replay

logger = logging.getLogger(__name__)

CALLER_STATE = "caller"
DELEGATION_STATE = "delegation"
MAX_JSON_BODY_BYTES = 4 * 1024 * 1024  # a non-streamed answer larger than this is not metered

ErrorRenderer = Callable[[APIError], Response]


def _platform_error(exc: APIError) -> Response:
    return exc.response()


def openai_error(exc: APIError) -> Response:
    """An identity error in OpenAI's error shape (``type`` added); the SDK must not retry a refusal."""
    body = {"error": {"message": exc.message, "type": exc.code, "code": exc.code, "param": None}}
    headers = dict(exc.headers)
    if exc.code != "rate_limited":
        headers["x-should-retry"] = "false"  # the openai SDK's retry opt-out: a spent budget stays spent
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def delegation_of(scope: Scope) -> str | None:
    """The delegation :class:`RequireScope` minted for the request (``delegate_ttl_s``; auth on)."""
    token = (scope.get("state") or {}).get(DELEGATION_STATE)
    return token if isinstance(token, str) else None


def caller_of(scope: Scope) -> Caller | None:
    """The caller :class:`RequireScope` let in (None on a public path)."""
    state = scope.get("state") or {}
    caller = state.get(CALLER_STATE)
    return caller if isinstance(caller, Caller) else None


class RequireScope:
    """Every HTTP request but ``public_paths`` needs ``scope`` (401/403/429 in the platform's JSON)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        gate: AuthGate,
        scope: str,
        public_paths: tuple[str, ...] = ("/health",),
        meter_tokens: bool = False,
        delegate_ttl_s: float | None = None,
        render: ErrorRenderer = _platform_error,
    ) -> None:
        self.app = app
        self.delegate_ttl_s = delegate_ttl_s
        self.gate = gate
        self.scope = scope
        self.public_paths = public_paths
        self.meter_tokens = meter_tokens
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Let a public path through; else identify the caller first (and meter the answer's tokens)."""
        if scope["type"] != "http" or relative_path(scope) in self.public_paths:
            await self.app(scope, receive, send)
            return
        try:
            caller = await self.gate.identify(Headers(scope=scope), self.scope)
        except APIError as exc:
            await self.render(exc)(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state[CALLER_STATE] = caller
        if self.delegate_ttl_s is not None:
            state[DELEGATION_STATE] = await self.gate.delegate(caller, self.delegate_ttl_s)
        if not self.gate.enabled:
            await self.app(scope, receive, send)
            return
        # The credential is spent at the door: the app never sees it, so it cannot pass it on (the
        # upstream LLM proxy forwards a caller's Authorization when it has no key of its own).
        scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() != b"authorization"]}
        if not self.meter_tokens:
            await self.app(scope, receive, send)
            return
        scope, receive = await ask_for_usage(scope, receive)
        meter = UsageMeter()
        try:
            await self.app(scope, receive, meter.wrap(send))
        finally:
            if meter.usage is not None:  # the gate logs a count it could not make, never raises
                await self.gate.count_tokens(caller, *meter.usage)


async def read_json_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The request's messages as read (to replay them) and its whole body.

    The body is None when it is larger than :data:`MAX_JSON_BODY_BYTES` or the client left before its
    end (then the last message says so).
    """
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if size > MAX_JSON_BODY_BYTES:
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages)


async def ask_for_usage(scope: Scope, receive: Receive) -> tuple[Scope, Receive]:
    """A streamed completion request with ``stream_options.include_usage`` set, so its tokens count.

    A client that streams without asking for usage would otherwise spend tokens no budget sees. Other
    requests (not JSON, not streamed, too large) pass unchanged; the body is read only for a POST.
    """
    if scope.get("method") != "POST":
        return scope, receive
    messages, body = await read_json_body(receive)
    if body is None:  # too large, or the client left: the app sees what came, as it came
        return scope, replay(messages, receive)
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict) and document.get("stream") is True:
        options = document.get("stream_options")
        options = dict(options) if isinstance(options, dict) else {}
        if options.get("include_usage") is not True:
            document["stream_options"] = {**options, "include_usage": True}
            body = json.dumps(document).encode()
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
            scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
    first: Message = {"type": "http.request", "body": body, "more_body": False}
    return scope, replay([first], receive)


def _usage_of(document: Any) -> tuple[int, int] | None:
    usage = document.get("usage") if isinstance(document, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return prompt, completion


class UsageMeter:
    """Reads the ``usage`` an OpenAI-compatible answer reports, as its body goes by (nothing is held up)."""

    def __init__(self) -> None:
        self.usage: tuple[int, int] | None = None
        self._streaming = False
        self._ok = False
        self._body = bytearray()
        self._pending = b""  # the unfinished last line of a streamed answer

    def wrap(self, send: Send) -> Send:
        """``send`` that reads the answer's status, type and body on the way out."""

        async def metered(message: Message) -> None:
            if message["type"] == "http.response.start":
                content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
                self._streaming = content_type.startswith("text/event-stream")
                self._ok = message.get("status", 200) < 400
            elif message["type"] == "http.response.body" and self._ok:
                self._feed(message.get("body", b""), more=message.get("more_body", False))
            await send(message)

        return metered

    def _feed(self, chunk: bytes, *, more: bool) -> None:
        if not self._streaming:
            if len(self._body) + len(chunk) <= MAX_JSON_BODY_BYTES:
                self._body += chunk
            if not more:
                self._read(bytes(self._body))
            return
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            if line.startswith(b"data:") and b'"usage"' in line:
                self._read(line[5:].strip())

    def _read(self, raw: bytes) -> None:
        try:
            found = _usage_of(json.loads(raw))
        except ValueError:
            return
        if found is not None:
            self.usage = found
