"""HTTP client of the agents' public contract: ``POST {agent}/chat`` (SSE) and ``GET {agent}/threads/{id}``.

Transport and HTTP failures become :class:`protocols.events.Error` events, so the UI renders every
problem (agent unreachable, 4xx/5xx, a stream cut short) the same way as an error the agent reports.
"""

import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from protocols.events import ChatEvent, Done, Error, aiter_sse_events

logger = logging.getLogger(__name__)

_BODY_PREVIEW_CHARS = 300


class ThreadToolCall(BaseModel):
    """A tool call recorded in a thread (LangChain ``{name, args, id}`` or OpenAI ``function`` shape)."""

    model_config = ConfigDict(extra="ignore")

    id: str = ""
    name: str
    args: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> "ThreadToolCall":
        function = raw.get("function")
        if isinstance(function, dict):
            arguments = function.get("arguments") or {}
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments) if arguments.strip() else {}
                except json.JSONDecodeError:
                    arguments = {"arguments": arguments}
            return cls(id=raw.get("id") or "", name=function.get("name", "?"), args=arguments)
        return cls.model_validate(raw)


class ThreadMessage(BaseModel):
    """One message of ``GET {agent}/threads/{id}``."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["user", "assistant", "tool", "system"]
    content: str = ""
    tool_calls: list[ThreadToolCall] = Field(default_factory=list)
    name: str | None = None
    tool_call_id: str | None = None
    status: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str:
        """Content blocks (a list of ``{"type": "text", "text": ...}``) are joined to their text."""
        if value is None:
            return ""
        if isinstance(value, list):
            return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in value)
        return str(value)

    @field_validator("tool_calls", mode="before")
    @classmethod
    def _calls(cls, value: Any) -> list[ThreadToolCall]:
        return [ThreadToolCall.parse(raw) for raw in value or []]


class ThreadHistory(BaseModel):
    model_config = ConfigDict(extra="ignore")

    thread_id: str
    messages: list[ThreadMessage]


class HistoryUnavailable(Exception):
    """The agent did not give a thread's history (unknown thread, no thread API, unreachable)."""

    def __init__(self, reason: str, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


def _error_detail(response: httpx.Response) -> str:
    """The message of a JSON error body (``{"error": {"message"}}`` or FastAPI's ``detail``), else text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if body.get("detail"):
            return str(body["detail"])
    text = response.text.strip()
    return text[:_BODY_PREVIEW_CHARS] or response.reason_phrase


class AgentClient:
    """One pooled HTTP client for every agent the UI talks to."""

    def __init__(
        self, *, token: str | None = None, connect_timeout_s: float = 10.0, read_timeout_s: float = 300.0
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def stream_chat(
        self, agent_url: str, user_request: str, thread_id: str | None = None
    ) -> AsyncIterator[ChatEvent]:
        """The agent's events for one request. Never raises for transport or HTTP failures: they come as
        an :class:`Error` event, after which the stream ends (no ``done`` follows a UI-side error)."""
        url = f"{agent_url}/chat"
        body: dict[str, Any] = {"user_request": user_request}
        if thread_id:
            body["thread_id"] = thread_id
        done = False
        try:
            async with self._http.stream("POST", url, json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    yield Error(
                        code=f"http_{response.status_code}",
                        message=f"{url} answered HTTP {response.status_code}: {_error_detail(response)}",
                    )
                    return
                async for event in aiter_sse_events(response.aiter_lines()):
                    done = done or isinstance(event, Done)
                    yield event
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            yield Error(code="agent_unreachable", message=f"cannot reach {url}: {exc or type(exc).__name__}")
            return
        except httpx.ReadTimeout:
            yield Error(code="timeout", message=f"{url} sent nothing for {self._http.timeout.read:.0f} s")
            return
        except httpx.HTTPError as exc:
            yield Error(code="stream_interrupted", message=f"the stream from {url} broke off: {exc!r}")
            return
        except (ValueError, ValidationError) as exc:
            yield Error(code="bad_event", message=f"{url} sent an event the UI cannot read: {exc}")
            return
        if not done:
            yield Error(code="stream_interrupted", message=f"the stream from {url} ended without `done`")

    async def fetch_thread(self, agent_url: str, thread_id: str) -> ThreadHistory:
        """A thread's messages from the agent's thread API; :class:`HistoryUnavailable` otherwise."""
        url = f"{agent_url}/threads/{thread_id}"
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise HistoryUnavailable(f"cannot reach {url}: {exc or type(exc).__name__}") from exc
        if response.status_code != 200:
            raise HistoryUnavailable(
                f"{url} answered HTTP {response.status_code}: {_error_detail(response)}",
                status_code=response.status_code,
            )
        try:
            return ThreadHistory.model_validate_json(response.content)
        except ValidationError as exc:
            raise HistoryUnavailable(
                f"{url} answered an unexpected body: {exc.error_count()} errors"
            ) from exc
