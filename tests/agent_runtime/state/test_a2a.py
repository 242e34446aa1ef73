"""A2A tasks in the shared database: two A2A app instances on one database play two replicas of an A2A
app. A task started through one is read, followed and canceled through the other, and the cancel stops
the run on the replica that owns it. The SSE agent behind both is the ``/chat`` test peer."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.helpers import get_artifact_text, get_message_text
from a2a.server.cluster import TaskVersion
from a2a.server.context import ServerCallContext
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskState,
    TaskStatus,
)
from a2a.utils.constants import TransportProtocol

from agent_runtime.a2a.app import A2AAgentSpec, create_a2a_app
from agent_runtime.state.database import Database
from agent_runtime.state.orphaned_tasks import ORPHANED_MESSAGE
from tests.support.a2a import ChatPeer, peer_url_fixture, serve_prefixed
from tests.support.persistence import database_fixtures
from tests.support.servers import free_port

PREFIX = "/a2a-weather"
postgres_url, database_url = database_fixtures()
peer_url = peer_url_fixture()


class Replica:
    def __init__(self, url: str) -> None:
        self.url = url

    async def client(
        self, *, streaming: bool = False, binding: TransportProtocol = TransportProtocol.JSONRPC
    ):
        config = ClientConfig(
            streaming=streaming,
            supported_protocol_bindings=[binding],
            httpx_client=httpx.AsyncClient(timeout=30),
        )
        return await ClientFactory(config).create_from_url(self.url)


@pytest.fixture(params=["chatty", "quiet"])
async def replicas(
    request: pytest.FixtureRequest, peer_url: tuple[ChatPeer, str], database_url: str
) -> AsyncIterator[list[Replica]]:
    """Two instances of the weather A2A app on one database (plus one of another agent, last).

    ``chatty`` ones write a progress update every 0.2 s (a write meets another replica's cancel);
    ``quiet`` ones write none while the agent streams text (only the state check can notice it).
    """
    _, agent_url = peer_url
    async with AsyncExitStack() as stack:
        started = []
        for name in ("weather", "weather", "research"):
            port = free_port()
            spec = A2AAgentSpec(name=name, description="test", agent_url=agent_url, route_prefix=PREFIX)
            app = create_a2a_app(
                spec,
                public_base_url=f"http://127.0.0.1:{port}",
                progress_interval_s=0.2 if request.param == "chatty" else 600,
                cancel_check_s=0.3,
                database=Database(database_url),
            )
            base = await stack.enter_async_context(serve_prefixed(app, PREFIX, port))
            started.append(Replica(base + PREFIX))
        yield started


def user_message(text: str, context_id: str) -> SendMessageRequest:
    message = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[Part(text=text)])
    message.context_id = context_id
    return SendMessageRequest(message=message)


async def wait_for(condition, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("replicas", ["quiet"], indirect=True)
async def test_a_task_is_read_through_any_replica_and_only_by_its_agent(replicas: list[Replica]) -> None:
    one, two, other_agent = replicas
    context = f"ctx-{uuid.uuid4().hex[:8]}"
    async with await one.client() as client:
        (response,) = [r async for r in client.send_message(user_message("tools: weather in Paris", context))]
    task = response.task
    assert task.status.state == TaskState.TASK_STATE_COMPLETED

    for binding in (TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON):
        async with await two.client(binding=binding) as client:
            stored = await client.get_task(GetTaskRequest(id=task.id))
        assert stored.status.state == TaskState.TASK_STATE_COMPLETED and stored.context_id == context
        assert get_artifact_text(stored.artifacts[0]) == get_artifact_text(task.artifacts[0])
        assert f"[thread {context}]" in get_artifact_text(stored.artifacts[0])

    async with await other_agent.client() as client:
        with pytest.raises(Exception, match="(?i)not found"):
            await client.get_task(GetTaskRequest(id=task.id))  # tasks are scoped to their agent


@pytest.mark.parametrize("binding", [TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON])
async def test_cancel_through_another_replica_stops_the_run_on_the_owner(
    replicas: list[Replica], peer_url: tuple[ChatPeer, str], binding: TransportProtocol
) -> None:
    peer, _ = peer_url
    owner, elsewhere, _ = replicas
    context = f"ctx-{uuid.uuid4().hex[:8]}"
    peer.slow_started.clear()
    async with await owner.client(streaming=True, binding=binding) as streaming:
        stream = streaming.send_message(user_message("slow: take your time", context))
        task_id = (await anext(stream)).task.id
        await wait_for(peer.slow_started.is_set)

        async with await elsewhere.client(binding=binding) as client:
            seen = await client.get_task(GetTaskRequest(id=task_id))
            assert seen.status.state == TaskState.TASK_STATE_WORKING  # visible while it runs elsewhere
            assert context not in peer.closed
            canceled = await client.cancel_task(CancelTaskRequest(id=task_id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED

        # the owner notices within its check interval and closes the agent's /chat stream ...
        await wait_for(lambda: context in peer.closed)
        # ... and its own client's stream ends with the canceled task
        states = []
        async with asyncio.timeout(10):
            async for event in stream:
                if event.HasField("task"):
                    states.append(event.task.status.state)
                elif event.HasField("status_update"):
                    states.append(event.status_update.status.state)
        assert states and states[-1] == TaskState.TASK_STATE_CANCELED

    for replica in (owner, elsewhere):
        async with await replica.client() as client:
            stored = await client.get_task(GetTaskRequest(id=task_id))
        assert stored.status.state == TaskState.TASK_STATE_CANCELED


@pytest.mark.parametrize("replicas", ["chatty"], indirect=True)
async def test_another_replica_follows_a_running_task(
    replicas: list[Replica], peer_url: tuple[ChatPeer, str]
) -> None:
    peer, _ = peer_url
    owner, elsewhere, _ = replicas
    context = f"ctx-{uuid.uuid4().hex[:8]}"
    peer.slow_started.clear()
    async with await owner.client(streaming=True) as streaming:
        stream = streaming.send_message(user_message("slow: keep going", context))
        task_id = (await anext(stream)).task.id
        await wait_for(peer.slow_started.is_set)
        async with await elsewhere.client(streaming=True) as client:
            updates = client.subscribe(SubscribeToTaskRequest(id=task_id))
            working = 0
            async with asyncio.timeout(10):
                async for event in updates:
                    if event.HasField("status_update"):
                        assert event.status_update.status.state == TaskState.TASK_STATE_WORKING
                        working += 1
                    if working >= 2:
                        break
            await updates.aclose()
            await client.cancel_task(CancelTaskRequest(id=task_id))
        await stream.aclose()
    await wait_for(lambda: context in peer.closed)


async def test_a_task_left_open_by_a_replica_that_died_is_failed_by_a_live_one(
    peer_url: tuple[ChatPeer, str], database_url: str
) -> None:
    _, agent_url = peer_url
    status = TaskStatus(state=TaskState.TASK_STATE_WORKING)  # its replica died an hour ago, mid-task
    status.timestamp.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
    orphan = Task(id=str(uuid.uuid4()), context_id=f"ctx-{uuid.uuid4().hex[:8]}", status=status)
    async with Database(database_url) as db:
        store, _ = db.task_store("weather")
        await store.save(
            orphan, event=None, prev=None, prev_version=TaskVersion.MISSING, context=ServerCallContext()
        )

    port = free_port()
    spec = A2AAgentSpec(name="weather", description="test", agent_url=agent_url, route_prefix=PREFIX)
    app = create_a2a_app(
        spec,
        public_base_url=f"http://127.0.0.1:{port}",
        task_timeout_s=60,  # so a task untouched for 90 s has no replica
        orphan_check_s=0.2,
        database=Database(database_url),
    )
    async with serve_prefixed(app, PREFIX, port) as base:
        async with await Replica(base + PREFIX).client() as client:
            async with asyncio.timeout(10):
                while (task := await client.get_task(GetTaskRequest(id=orphan.id))).status.state == (
                    TaskState.TASK_STATE_WORKING
                ):
                    await asyncio.sleep(0.1)
    assert task.status.state == TaskState.TASK_STATE_FAILED
    assert get_message_text(task.status.message) == ORPHANED_MESSAGE
