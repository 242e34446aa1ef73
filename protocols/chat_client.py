"""The one async client of an agent's public HTTP contract: ``POST /chat`` (SSE), the thread API, ``/health``.

::

    async with ChatClient("http://127.0.0.1:8000/weather-agent") as agent:
        result = await agent.send("Weather in Paris?")            # the whole run, collected
        async for event in agent.stream("And tomorrow?", thread_id=result.thread_id):
            ...                                                     # typed protocols.events models

Failures, one tree (every one has a ``code`` and a ``message``)::

    ChatClientError
    ├── ChatRequestError   the agent answered an HTTP error (4xx/5xx) instead of a stream or a body:
    │                      ``status``, the body's ``code`` (an HTTPErrorCode for the platform's agents),
    │                      ``message``, ``retry_after_s``
    └── ChatStreamError    the exchange itself failed; ``code`` is a client-side ErrorCode:
                           ``agent_unreachable`` (connect failed), ``timeout`` (nothing for the read
                           timeout), ``stream_interrupted`` (connection broke, or the body ended without
                           ``done``), ``bad_event`` (a frame that is not an event of the contract)

Credentials: ``token=`` on the constructor is the client's default ``Authorization: Bearer``; every call
to an agent route (:meth:`ChatClient.stream`, :meth:`~ChatClient.send`, :meth:`~ChatClient.get_thread`,
:meth:`~ChatClient.delete_thread`) also takes ``token=``, sent for that call only, instead of the default:
one client can serve many users, each with their own API key. A token never appears in a log line or
an exception's message (an error body that echoes it is redacted).

An ``error`` *event* is not an exception: the agent reports it inside a well-formed stream, and
``done`` follows it. Streams can run for minutes, so the default stream timeout has no read limit
(the agent's keep-alive pings are what keep an idle stream open through proxies).
"""

import email.utils
import logging
import re
import time
import urllib.parse
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from platform_core.errors import PlatformError
from protocols.events import (
    ChatEvent,
    Done,
    Error,
    Metadata,
    PriorTurn,
    ToolCall,
    ToolResult,
    Usage,
    aiter_sse_events,
)
from protocols.threads import ThreadView

logger = logging.getLogger(__name__)

DEFAULT_STREAM_TIMEOUT = httpx.Timeout(30.0, connect=10.0, read=None)
"""For ``POST /chat``: connect within 10 s; then wait as long as the run takes."""
DEFAULT_REQUEST_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
"""For the thread API and ``/health``: short answers."""

_BODY_PREVIEW_CHARS = 300
_BEARER_TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what a header value can carry unchanged
REDACTED = "[redacted]"


class ChatClientError(PlatformError):
    """Root of every failure a :class:`ChatClient` call raises."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ChatRequestError(ChatClientError):
    """The agent answered an HTTP error instead of a stream (or a thread, or a health report).

    ``code`` is the body's ``error.code`` (a :data:`protocols.events.HTTPErrorCode` from the platform's
    agents), or ``http_<status>`` when the body is not the platform's JSON error (a proxy's 502, say).
    """

    def __init__(
        self, status: int, code: str, message: str, *, url: str = "", retry_after_s: float | None = None
    ) -> None:
        super().__init__(code, message)
        self.status = status
        self.url = url
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return f"{self.url or 'the agent'} answered HTTP {self.status}: {self.message}"


class ChatStreamError(ChatClientError):
    """The exchange failed on the way; ``message`` names the URL.

    ``code`` is ``agent_unreachable``, ``timeout``, ``stream_interrupted`` or ``bad_event`` (see
    :data:`protocols.events.ErrorCode`).
    """


@dataclass(frozen=True)
class ChatResult:
    """One run, collected: every event, and what a caller usually wants from them."""

    events: list[ChatEvent]
    thread_id: str
    answer: str
    usage: Usage
    error: Error | None
    run_id: str | None

    @classmethod
    def from_events(cls, events: list[ChatEvent]) -> "ChatResult":
        """Collect a complete stream (``done`` last); ``ValueError`` when it is not one."""
        if not events or not isinstance(done := events[-1], Done):
            raise ValueError("a chat result needs a stream that ends with `done`")
        metadata = next((e for e in events if isinstance(e, Metadata)), None)
        error = next((e for e in reversed(events) if isinstance(e, Error)), None)
        return cls(
            events=events,
            thread_id=done.thread_id,
            answer=done.answer,
            usage=done.usage,
            error=error,
            run_id=metadata.run_id if metadata else None,
        )

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The run's tool calls, in order."""
        return [e for e in self.events if isinstance(e, ToolCall)]

    @property
    def tool_results(self) -> list[ToolResult]:
        """The run's tool results, in order."""
        return [e for e in self.events if isinstance(e, ToolResult)]


def _retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), if the response has one."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def bearer_header(token: str) -> str:
    """``Bearer <token>``; ``ValueError`` (not naming the token) when it cannot be a header value.

    A token with a space, a line break or a non-ASCII character would make httpx fail with an error
    that quotes the whole header, the secret included: such a token is refused before it is sent.
    """
    if not _BEARER_TOKEN.fullmatch(token):
        raise ValueError("not a usable bearer token: only visible ASCII characters, no spaces")
    return f"Bearer {token}"


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every occurrence of one of ``secrets`` replaced by :data:`REDACTED`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def request_error(response: httpx.Response, *, secrets: tuple[str, ...] = ()) -> ChatRequestError:
    """The :class:`ChatRequestError` of an error response whose body has been read.

    Code and message come from the platform's ``{"error": {code, message}}`` body, FastAPI's
    ``{"detail"}``, or a preview of whatever text came; ``secrets`` (the tokens the request carried)
    are redacted from the message, should the answer echo one.
    """
    code, message = f"http_{response.status_code}", ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = str(error.get("code") or code)
            message = str(error.get("message") or "")
        elif body.get("detail"):
            message = str(body["detail"])
    if not message:
        message = response.text.strip()[:_BODY_PREVIEW_CHARS] or response.reason_phrase
    return ChatRequestError(
        response.status_code,
        code,
        redact(message, secrets),
        url=str(response.url),
        retry_after_s=_retry_after_s(response),
    )


def _describe(exc: BaseException) -> str:
    """``str()`` of many httpx errors is empty; name the type so the message still says something."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class ChatClient:
    """Client of one agent, at its route (e.g. ``http://127.0.0.1:8000/weather-agent``).

    ``http`` shares a pooled ``httpx.AsyncClient`` (its headers, auth and transport) between clients of
    several agents; the caller then closes it. Without one the client makes and owns its own.
    ``stream_timeout`` applies to ``POST /chat``, ``request_timeout`` to the other calls. ``token`` is
    the default bearer token; a call's own ``token=`` replaces it for that call.
    """

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
        stream_timeout: httpx.Timeout = DEFAULT_STREAM_TIMEOUT,
        request_timeout: httpx.Timeout = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(follow_redirects=False)
        self._headers = dict(headers or {})
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self.stream_timeout = stream_timeout
        self.request_timeout = request_timeout

    @property
    def chat_url(self) -> str:
        """``{base}/chat``, where runs are streamed."""
        return f"{self.base_url}/chat"

    def thread_url(self, thread_id: str) -> str:
        """``{base}/threads/{id}``, the id quoted so no value can reach another path."""
        return f"{self.base_url}/threads/{urllib.parse.quote(thread_id, safe='')}"

    async def aclose(self) -> None:
        """Close the HTTP client if this client made it."""
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> "ChatClient":
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- /chat ---------------------------------------------------------------------------------------

    async def stream(
        self,
        user_request: str,
        thread_id: str | None = None,
        *,
        token: str | None = None,
        history: Sequence[PriorTurn] = (),
    ) -> AsyncGenerator[ChatEvent, None]:
        """The run's events as they arrive, ``metadata`` first and ``done`` last (then it stops).

        ``token``: the bearer token of this call (else the client's default); ``ValueError`` when it
        cannot be sent (see :func:`bearer_header`). ``history``: earlier turns of a conversation the
        caller kept, for a new thread (no ``thread_id``).

        Raises :class:`ChatRequestError` when the agent refuses the request before any stream starts
        (4xx/5xx), :class:`ChatStreamError` when the exchange fails on the way (also when the body ends
        without ``done``). Breaking out of the loop early should close the generator
        (``contextlib.aclosing``) so the connection closes at once, which stops the agent's run.
        """
        url = self.chat_url
        body: dict[str, Any] = {"user_request": user_request}
        if thread_id:
            body["thread_id"] = thread_id
        if history:
            body["history"] = [turn.model_dump() for turn in history]
        headers = {**self._call_headers(token), "Accept": "text/event-stream"}
        secrets = self._secrets(token)
        try:
            async with self._http.stream(
                "POST", url, json=body, headers=headers, timeout=self.stream_timeout
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise request_error(response, secrets=secrets)
                async for event in aiter_sse_events(response.aiter_lines()):
                    yield event
                    if isinstance(event, Done):
                        return
        except httpx.HTTPError as exc:
            raise self._transport_error(url, exc, secrets) from exc
        except ValueError as exc:  # includes pydantic's ValidationError: a frame off the contract
            raise ChatStreamError(
                "bad_event",
                f"{url} sent an event that is not in the /chat contract: {redact(str(exc), secrets)}",
            ) from exc
        raise ChatStreamError("stream_interrupted", f"the stream from {url} ended without `done`")

    async def send(
        self,
        user_request: str,
        thread_id: str | None = None,
        *,
        token: str | None = None,
        history: Sequence[PriorTurn] = (),
    ) -> ChatResult:
        """Run one request to its end and collect it; takes the arguments and raises as :meth:`stream`."""
        events = [event async for event in self.stream(user_request, thread_id, token=token, history=history)]
        return ChatResult.from_events(events)

    # --- the thread API, /health ---------------------------------------------------------------------

    async def get_thread(self, thread_id: str, *, token: str | None = None) -> ThreadView | None:
        """The conversation the agent holds for ``thread_id``; ``None`` when it holds none.

        None answers ``404 thread_not_found``; any other error answer raises :class:`ChatRequestError`
        (an agent without the thread API answers ``404 not_found``). ``token`` as for :meth:`stream`.
        """
        response = await self._request("GET", self.thread_url(thread_id), token=token)
        if self._thread_not_found(response):
            return None
        if response.status_code != 200:
            raise request_error(response, secrets=self._secrets(token))
        try:
            return ThreadView.model_validate_json(response.content)
        except ValueError as exc:
            raise ChatStreamError("bad_event", f"{response.url} answered an unexpected body: {exc}") from exc

    async def delete_thread(self, thread_id: str, *, token: str | None = None) -> bool:
        """Forget the conversation: ``True`` when it was deleted, ``False`` when there was none.

        A thread with a run in progress raises :class:`ChatRequestError` ``thread_busy`` (409).
        ``token`` as for :meth:`stream`.
        """
        response = await self._request("DELETE", self.thread_url(thread_id), token=token)
        if self._thread_not_found(response):
            return False
        if response.status_code >= 400:
            raise request_error(response, secrets=self._secrets(token))
        return True

    async def health(self) -> dict[str, Any]:
        """The agent's ``GET /health`` report (``{"ready": bool, ...}``), also while it is not ready.

        A not-ready agent answers 503 with a report; other answers raise :class:`ChatRequestError`.
        """
        response = await self._request("GET", f"{self.base_url}/health")
        try:
            report = response.json()
        except ValueError:
            report = None
        if response.status_code in (200, 503) and isinstance(report, dict) and "ready" in report:
            return report
        raise request_error(response)

    def _call_headers(self, token: str | None) -> dict[str, str]:
        """The headers of one call: the client's, with ``token`` (when given) as its credential."""
        if not token:  # like the constructor's: an empty token is no token
            return dict(self._headers)
        return {**self._headers, "Authorization": bearer_header(token)}

    def _secrets(self, token: str | None) -> tuple[str, ...]:
        """The tokens a call may have sent, to keep out of its error messages."""
        defaults = (self._headers.get("Authorization", ""), self._http.headers.get("Authorization", ""))
        candidates = (token, *(value.removeprefix("Bearer ").strip() for value in defaults))
        return tuple(secret for secret in candidates if secret)

    async def _request(self, method: str, url: str, *, token: str | None = None) -> httpx.Response:
        headers = self._call_headers(token)
        try:
            return await self._http.request(method, url, headers=headers, timeout=self.request_timeout)
        except httpx.HTTPError as exc:
            raise self._transport_error(url, exc, self._secrets(token)) from exc

    @staticmethod
    def _thread_not_found(response: httpx.Response) -> bool:
        return response.status_code == 404 and request_error(response).code == "thread_not_found"

    def _transport_error(self, url: str, exc: httpx.HTTPError, secrets: tuple[str, ...]) -> ChatStreamError:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return ChatStreamError(
                "agent_unreachable", f"cannot reach {url}: {redact(_describe(exc), secrets)}"
            )
        if isinstance(exc, httpx.ReadTimeout):
            read = (self.stream_timeout if url == self.chat_url else self.request_timeout).read
            waited = f" for {read:.0f} s" if read is not None else ""
            return ChatStreamError("timeout", f"{url} sent nothing{waited}")
        return ChatStreamError(
            "stream_interrupted", f"the exchange with {url} broke off: {redact(_describe(exc), secrets)}"
        )
