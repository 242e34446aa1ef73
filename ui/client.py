"""The UI's view of agents: :class:`protocols.chat_client.ChatClient` with every failure made showable.

Transport and HTTP failures become :class:`protocols.events.Error` events, so the UI renders every
problem (agent unreachable, 4xx/5xx, a stream cut short) the same way as an error the agent reports; a
thread the agent cannot give is :class:`HistoryUnavailable`. The wire models are :mod:`protocols.threads`.

Credentials: the client's ``token`` (``UI_BEARER_TOKEN``) is shared by every user of the replica; a
user's own API key comes with each call (``token=``) and is sent for that call only, so keys of two
browser sessions never mix and none is kept here. :func:`refusal_message` is the one place that words
the platform's refusals (401 no or bad key, 403 scope, 429 limits) for people.
"""

import logging
import math
from collections.abc import AsyncIterator

import httpx

from protocols.chat_client import ChatClient, ChatClientError, ChatRequestError, bearer_header
from protocols.events import ChatEvent, Error
from protocols.threads import ThreadMessage, ThreadToolCall, ThreadView

__all__ = [
    "AgentClient",
    "HistoryUnavailable",
    "ThreadMessage",
    "ThreadToolCall",
    "ThreadView",
    "clean_api_key",
    "refusal_message",
]

logger = logging.getLogger(__name__)

API_KEY_PANEL = "API key"
"""The label of the page's key panel, which the messages below point to."""
CREATE_KEY_HINT = "create one with `platform-keys create --name NAME --scope agent:*`"


def clean_api_key(raw: str | None) -> str | None:
    """The API key as entered (surrounding whitespace dropped), None when none was entered.

    ``ValueError`` for text that cannot be a key (inner spaces, line breaks, non-ASCII): sending it
    would only fail, and the message says so without repeating it.
    """
    key = (raw or "").strip()
    if not key:
        return None
    try:
        bearer_header(key)
    except ValueError:
        raise ValueError(
            f"That is not an API key: it has spaces or characters no key has. Paste the whole key "
            f"(`rap_...`) under '{API_KEY_PANEL}'."
        ) from None
    return key


def _retry_in(seconds: float | None) -> str:
    """When to try again, from ``Retry-After`` (seconds) if the answer had one."""
    if seconds is None:
        return "try again later"
    if seconds < 90:
        return f"try again in {max(1, math.ceil(seconds))} s"
    if seconds < 90 * 60:
        return f"try again in {math.ceil(seconds / 60)} min"
    return f"try again in {math.ceil(seconds / 3600)} h"


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].upper() + text[1:]


def refusal_message(exc: ChatRequestError, *, agent: str, key_given: bool, sign_in: bool = False) -> str:
    """What the page shows for the HTTP error answer ``exc`` of ``agent``.

    The platform's refusals become advice (which key to enter, when to retry); any other status keeps
    the URL and the agent's message. ``key_given``: whether the user entered a key (or signed in);
    without one, a 401 or 403 is the platform asking for one. ``sign_in``: whether the page offers OIDC
    sign-in, which the advice then names first. The server's messages never carry a secret
    (:mod:`identity.errors`); :class:`ChatClient` redacts the key should one echo it.
    """
    enter = f"enter one under '{API_KEY_PANEL}' ({CREATE_KEY_HINT})"
    if sign_in:
        enter = f"sign in, or {enter}"
    if exc.status == 401:
        if not key_given:
            return f"This platform needs an API key: {enter}"
        refused = f"The API key was refused: {exc.message}"
        return f"{refused} (sign in again if your sign-in has expired)" if sign_in else refused
    if exc.status == 403:
        if not key_given:
            return f"This platform needs an API key that may use the {agent} agent: {enter}"
        return f"This API key may not use the {agent} agent ({exc.message})"
    if exc.status == 429:
        return f"{_sentence(exc.message)}: {_retry_in(exc.retry_after_s)}"
    return str(exc)


class HistoryUnavailable(Exception):
    """The agent did not give a thread's history (unknown thread, no thread API, unreachable)."""

    def __init__(self, reason: str, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


class AgentClient:
    """One pooled HTTP client for every agent the UI talks to (a :class:`ChatClient` per agent URL)."""

    def __init__(
        self,
        *,
        token: str | None = None,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 300.0,
        sign_in: bool = False,
    ) -> None:
        self.sign_in = sign_in  # the page offers OIDC sign-in: refusals advise it
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
        self,
        agent_url: str,
        user_request: str,
        thread_id: str | None = None,
        *,
        token: str | None = None,
        agent_name: str | None = None,
    ) -> AsyncIterator[ChatEvent]:
        """The agent's events for one request; transport and HTTP failures come as an event, not raised.

        Such a failure is an :class:`Error` event, after which the stream ends (no ``done`` follows a
        UI-side error); its message is :func:`refusal_message`'s. ``token``: the user's API key for this
        request (see :func:`clean_api_key`); ``agent_name``: the agent as the page names it.
        """
        try:
            async for event in self.agent(agent_url).stream(user_request, thread_id, token=token):
                yield event
        except ChatRequestError as exc:
            message = refusal_message(
                exc, agent=agent_name or agent_url, key_given=bool(token), sign_in=self.sign_in
            )
            yield Error(code=f"http_{exc.status}", message=message)
        except ChatClientError as exc:
            logger.info("chat with %s failed: %s", agent_url, exc.message)
            yield Error(code=exc.code, message=exc.message)

    async def fetch_thread(
        self, agent_url: str, thread_id: str, *, token: str | None = None, agent_name: str | None = None
    ) -> ThreadView:
        """A thread's messages from the agent's thread API; :class:`HistoryUnavailable` otherwise.

        ``token`` and ``agent_name`` as for :meth:`stream_chat`.
        """
        client = self.agent(agent_url)
        try:
            view = await client.get_thread(thread_id, token=token)
        except ChatRequestError as exc:
            message = refusal_message(
                exc, agent=agent_name or agent_url, key_given=bool(token), sign_in=self.sign_in
            )
            raise HistoryUnavailable(message, status_code=exc.status) from exc
        except ChatClientError as exc:
            raise HistoryUnavailable(exc.message) from exc
        if view is None:
            url = client.thread_url(thread_id)
            raise HistoryUnavailable(f"{url} answered HTTP 404: no thread {thread_id}", status_code=404)
        return view
