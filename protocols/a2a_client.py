"""Call a remote A2A agent with one text message and get its answer, on the official a2a-sdk client.

Per agent base URL this module keeps one ``httpx.AsyncClient`` (connection reuse) and the resolved agent
card (cached for ``CARD_TTL_S``, dropped when the agent turns out unreachable). Failures surface as
three clear exceptions: :class:`A2AUnavailable` (card fetch failed, connection refused, 5xx),
:class:`A2ATimeout` and :class:`A2ATaskFailed` (the remote task failed, was rejected or canceled).
"""

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httpx
from a2a.client import (
    A2ACardResolver,
    A2AClientError,
    A2AClientTimeoutError,
    AgentCardResolutionError,
    AuthInterceptor,
    Client,
    ClientCallInterceptor,
    ClientConfig,
    ClientFactory,
    CredentialService,
)
from a2a.helpers import get_artifact_text, get_message_text
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    TaskState,
)
from a2a.utils.constants import PROTOCOL_VERSION_CURRENT, VERSION_HEADER, TransportProtocol
from a2a.utils.errors import A2AError

from platform_core.errors import PlatformError
from platform_core.telemetry import TRACE_HOOKS

logger = logging.getLogger(__name__)

CARD_TTL_S = 300.0
_CONNECT_TIMEOUT_S = 10.0
_CANCEL_TIMEOUT_S = 5.0
_ANSWER_ARTIFACT = "answer"
_FAILED_STATES = {
    TaskState.TASK_STATE_FAILED: "failed",
    TaskState.TASK_STATE_REJECTED: "rejected",
    TaskState.TASK_STATE_CANCELED: "canceled",
    TaskState.TASK_STATE_INPUT_REQUIRED: "needs input",
    TaskState.TASK_STATE_AUTH_REQUIRED: "needs authorization",
}


class A2ACallError(PlatformError):
    """A call to a remote A2A agent did not produce an answer."""


class A2AUnavailable(A2ACallError):
    """The agent could not be reached: card fetch failed, connection error, or a 5xx answer."""


class A2ATimeout(A2ACallError):
    """The agent did not answer within the call's timeout."""


class A2ATaskFailed(A2ACallError):
    """The remote task ended without an answer; the message is the remote agent's."""

    def __init__(self, message: str, *, state: str, task_id: str = "") -> None:
        super().__init__(message)
        self.state = state
        self.task_id = task_id


@dataclass(frozen=True)
class A2AResult:
    """A remote agent's answer, with its conversation (pass ``context_id`` to continue it) and task ids."""

    text: str
    context_id: str
    task_id: str


@dataclass
class _Peer:
    """Connections and the cached card of one agent base URL, bound to the event loop that made them."""

    http: httpx.AsyncClient
    loop: asyncio.AbstractEventLoop
    card: AgentCard | None = None
    card_expires: float = 0.0


_peers: dict[str, _Peer] = {}


def _peer(base_url: str) -> _Peer:
    loop = asyncio.get_running_loop()
    peer = _peers.get(base_url)
    if peer is None or peer.loop is not loop or peer.http.is_closed:
        # Reads are bounded by each call's own timeout; httpx's default 5 s is far too short for agents.
        # The version header from the first request on, the card fetch included: without it an A2A server
        # takes us for a 0.3 client and serves the 0.3 card (the SDK adds it only once a client is made).
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, connect=_CONNECT_TIMEOUT_S, read=None),
            headers={VERSION_HEADER: PROTOCOL_VERSION_CURRENT},
            event_hooks=TRACE_HOOKS,  # each message in its caller's trace (a travel run's, say)
        )
        peer = _peers[base_url] = _Peer(http=http, loop=loop)
    return peer


def _rebase(card: AgentCard, base_url: str) -> AgentCard:
    """Point the card's interfaces for this route at ``base_url``.

    Cards advertise the public URL; a caller inside the platform reaches the agent at the URL it
    resolved the card from (the Serve proxy), which may differ in scheme and host only.
    """
    base = urlsplit(base_url)
    for interface in card.supported_interfaces:
        url = urlsplit(interface.url)
        if url.path.rstrip("/") == base.path.rstrip("/"):
            interface.url = url._replace(scheme=base.scheme, netloc=base.netloc).geturl()
    return card


async def resolve_card(base_url: str, *, refresh: bool = False) -> AgentCard:
    """The agent card at ``base_url`` (cached); raises :class:`A2AUnavailable` when it cannot be had."""
    base_url = base_url.rstrip("/")
    peer = _peer(base_url)
    if refresh or peer.card is None or time.monotonic() >= peer.card_expires:
        try:
            card = await A2ACardResolver(peer.http, base_url).get_agent_card()
        except AgentCardResolutionError as exc:
            raise A2AUnavailable(f"no agent card at {base_url}: {exc.message}") from exc
        peer.card, peer.card_expires = _rebase(card, base_url), time.monotonic() + CARD_TTL_S
    assert peer.card is not None
    return peer.card


def _status_text(response: StreamResponse) -> str:
    status = None
    if response.HasField("task"):
        status = response.task.status
    elif response.HasField("status_update"):
        status = response.status_update.status
    return get_message_text(status.message) if status is not None and status.HasField("message") else ""


class _Outcome:
    """Folds the stream of task events into the final answer."""

    def __init__(self) -> None:
        self.task_id = ""
        self.context_id = ""
        self.artifacts: dict[str, tuple[str, str]] = {}  # artifact id -> (name, text)
        self.state: TaskState = TaskState.TASK_STATE_UNSPECIFIED
        self.status_text = ""
        self.message_text: str | None = None

    def add(self, response: StreamResponse) -> None:
        if response.HasField("message"):
            self.context_id = response.message.context_id or self.context_id
            self.message_text = get_message_text(response.message)
            return
        if response.HasField("task"):
            task = response.task
            self.task_id, self.context_id, self.state = task.id, task.context_id, task.status.state
            for artifact in task.artifacts:
                self.artifacts[artifact.artifact_id] = (artifact.name, get_artifact_text(artifact))
        elif response.HasField("status_update"):
            update = response.status_update
            self.task_id, self.context_id, self.state = update.task_id, update.context_id, update.status.state
        elif response.HasField("artifact_update"):
            update = response.artifact_update
            name, text = self.artifacts.get(update.artifact.artifact_id, (update.artifact.name, ""))
            chunk = get_artifact_text(update.artifact)
            self.artifacts[update.artifact.artifact_id] = (name, text + chunk if update.append else chunk)
        self.status_text = _status_text(response) or self.status_text

    @property
    def finished(self) -> bool:
        return self.message_text is not None or self.state in _FAILED_STATES or self.completed

    @property
    def completed(self) -> bool:
        return self.state == TaskState.TASK_STATE_COMPLETED

    def answer(self, agent: str) -> A2AResult:
        if self.message_text is not None:
            return A2AResult(self.message_text, self.context_id, self.task_id)
        if self.completed:
            named = [text for name, text in self.artifacts.values() if name == _ANSWER_ARTIFACT]
            texts = named or [text for _, text in self.artifacts.values() if text]
            return A2AResult("\n".join(texts) or self.status_text, self.context_id, self.task_id)
        if self.state in _FAILED_STATES:
            state = _FAILED_STATES[self.state]
            detail = self.status_text or "no reason given"
            raise A2ATaskFailed(f"{agent} task {state}: {detail}", state=state, task_id=self.task_id)
        raise A2ACallError(
            f"{agent} stream ended before the task finished (state {TaskState.Name(self.state)})"
        )


async def a2a_execute_text(
    base_url: str,
    text: str,
    timeout_s: float = 360.0,
    context_id: str | None = None,
    *,
    transports: tuple[TransportProtocol, ...] = (TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON),
    credentials: CredentialService | None = None,
) -> A2AResult:
    """Send ``text`` to the A2A agent at ``base_url`` and wait for its answer.

    ``context_id`` continues an earlier conversation (pass the previous result's ``context_id``).
    ``transports`` is the client's preference among the card's interfaces. A call that times out or is
    cancelled cancels the remote task (best effort), so the remote agent stops working for nobody.
    ``credentials`` answer the security schemes the card requires, through a2a-sdk's ``AuthInterceptor``
    (the cancel included).
    """
    base_url = base_url.rstrip("/")
    card = await resolve_card(base_url)
    peer = _peer(base_url)
    config = ClientConfig(
        streaming=True,
        httpx_client=peer.http,
        supported_protocol_bindings=list(transports),
        use_client_preference=True,
    )
    interceptors: list[ClientCallInterceptor] | None = (
        [AuthInterceptor(credentials)] if credentials is not None else None
    )
    client = ClientFactory(config).create(card, interceptors=interceptors)
    message = Message(
        role=Role.ROLE_USER,
        message_id=uuid.uuid4().hex,
        parts=[Part(text=text)],
        context_id=context_id or "",
    )
    outcome = _Outcome()
    agent = card.name or base_url
    try:
        async with asyncio.timeout(timeout_s):
            # The SDK declares an AsyncIterator; its clients are async generators, closed once we break.
            request = SendMessageRequest(message=message)
            stream = cast(AsyncGenerator[StreamResponse, None], client.send_message(request))
            async with aclosing(stream) as responses:
                async for response in responses:
                    outcome.add(response)
                    if outcome.finished:
                        break
    except TimeoutError:
        await _cancel_remote(client, outcome.task_id)
        raise A2ATimeout(f"{agent} did not answer within {timeout_s:g} s") from None
    except asyncio.CancelledError:
        await _cancel_remote(client, outcome.task_id)
        raise
    except A2AClientTimeoutError as exc:
        raise A2ATimeout(f"{agent} timed out: {exc.message}") from exc
    except A2AClientError as exc:
        if _is_unavailable(exc):
            peer.card = None  # it may come back elsewhere (redeploy): fetch the card again next time
            raise A2AUnavailable(f"{agent} unavailable at {base_url}: {exc.message}") from exc
        raise A2ACallError(f"{agent} call failed: {exc.message}") from exc
    except A2AError as exc:
        raise A2ACallError(f"{agent} refused the request: {exc.message}") from exc
    finally:
        await client.close()
    return outcome.answer(agent)


def _is_unavailable(exc: BaseException) -> bool:
    """Connection-level failures and 5xx answers mean "not there now", unlike a 4xx protocol error."""
    cause = exc.__cause__
    if isinstance(cause, httpx.HTTPStatusError):
        return cause.response.status_code >= 500
    return isinstance(cause, httpx.TransportError)


async def _cancel_remote(client: Client, task_id: str) -> None:
    """Best effort: a caller that gave up should not leave the remote agent working."""
    if not task_id:
        return
    try:
        async with asyncio.timeout(_CANCEL_TIMEOUT_S):
            await asyncio.shield(client.cancel_task(CancelTaskRequest(id=task_id)))
    except (Exception, asyncio.CancelledError) as exc:  # any failure: it is only an attempt
        logger.info("could not cancel remote task %s: %s", task_id, exc)
