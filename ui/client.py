"""The UI's view of agents: :class:`protocols.chat_client.ChatClient` with every failure made showable.

Transport and HTTP failures become :class:`protocols.events.Error` events, so the UI renders every
problem (agent unreachable, 4xx/5xx, a stream cut short) the same way as an error the agent reports; a
thread the agent cannot give is :class:`HistoryUnavailable`. The wire models are :mod:`protocols.threads`.
"""

import logging
from collections.abc import AsyncIterator

import httpx

from protocols.chat_client import ChatClient, ChatClientError, ChatRequestError
from protocols.events import ChatEvent, Error
from protocols.threads import ThreadMessage, ThreadToolCall, ThreadView

__all__ = ["AgentClient", "HistoryUnavailable", "ThreadMessage", "ThreadToolCall", "ThreadView"]

logger = logging.getLogger(__name__)


class HistoryUnavailable(Exception):
    """The agent did not give a thread's history (unknown thread, no thread API, unreachable)."""

    def __init__(self, reason: str, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


class AgentClient:
    """One pooled HTTP client for every agent the UI talks to (a :class:`ChatClient` per agent URL)."""

    def __init__(
        self, *, token: str | None = None, connect_timeout_s: float = 10.0, read_timeout_s: float = 300.0
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        self._http = httpx.AsyncClient(headers=headers, timeout=self._timeout, follow_redirects=False)
        self._agents: dict[str, ChatClient] = {}

    def agent(self, agent_url: str) -> ChatClient:
        """The client of the agent at ``agent_url`` (sharing this client's connections)."""
        if agent_url not in self._agents:
            self._agents[agent_url] = ChatClient(
                agent_url, http=self._http, stream_timeout=self._timeout, request_timeout=self._timeout
            )
        return self._agents[agent_url]

    async def aclose(self) -> None:
        """Close the pooled HTTP client (every agent's client shares it)."""
        await self._http.aclose()

    async def stream_chat(
        self, agent_url: str, user_request: str, thread_id: str | None = None
    ) -> AsyncIterator[ChatEvent]:
        """The agent's events for one request; transport and HTTP failures come as an event, not raised.

        Such a failure is an :class:`Error` event, after which the stream ends (no ``done`` follows a
        UI-side error).
        """
        try:
            async for event in self.agent(agent_url).stream(user_request, thread_id):
                yield event
        except ChatRequestError as exc:
            yield Error(code=f"http_{exc.status}", message=str(exc))
        except ChatClientError as exc:
            logger.info("chat with %s failed: %s", agent_url, exc.message)
            yield Error(code=exc.code, message=exc.message)

    async def fetch_thread(self, agent_url: str, thread_id: str) -> ThreadView:
        """A thread's messages from the agent's thread API; :class:`HistoryUnavailable` otherwise."""
        client = self.agent(agent_url)
        try:
            view = await client.get_thread(thread_id)
        except ChatRequestError as exc:
            raise HistoryUnavailable(str(exc), status_code=exc.status) from exc
        except ChatClientError as exc:
            raise HistoryUnavailable(exc.message) from exc
        if view is None:
            url = client.thread_url(thread_id)
            raise HistoryUnavailable(f"{url} answered HTTP 404: no thread {thread_id}", status_code=404)
        return view
