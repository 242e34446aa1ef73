"""The A2A app over real HTTP: official a2a-sdk clients (JSON-RPC and REST), raw 0.3 requests, streaming,
cancel, failures. The SSE agent behind it is the ``/chat`` test peer from ``test_a2a_support``."""

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from types import SimpleNamespace

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.compat.v0_3.types import AgentCard as AgentCardV03
from a2a.helpers import get_artifact_text, get_message_text
from a2a.server.context import ServerCallContext
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
    TaskStatus,
)
from a2a.utils.constants import TransportProtocol
from google.protobuf import json_format
from pydantic import ValidationError

from agent_runtime.a2a.app import A2AAgentArgs, A2AAgentSpec, A2ASkill, a2a_app_builder, create_a2a_app
from agent_runtime.a2a.executor import thread_id_for_context
from platform_core.settings import get_settings
from protocols.events import THREAD_ID_PATTERN
from tests.support.a2a import ChatPeer, peer_url_fixture, serve_prefixed
from tests.support.servers import free_port

PREFIX = "/a2a-weather"
SPEC = A2AAgentSpec(
    name="weather",
    description="Answers questions about the weather.",
    skills=[A2ASkill(id="forecast", name="Forecast", description="Forecasts by city.", examples=["Paris?"])],
    agent_url="/weather-agent",
    route_prefix=PREFIX,
)


class A2AServer:
    def __init__(self, peer: ChatPeer, base_url: str, store: InMemoryTaskStore) -> None:
        self.peer, self.base_url, self.store = peer, base_url, store
        self.url = base_url + PREFIX

    def client(self, binding: TransportProtocol = TransportProtocol.JSONRPC, *, streaming: bool = False):
        config = ClientConfig(
            streaming=streaming,
            supported_protocol_bindings=[binding],
            httpx_client=httpx.AsyncClient(timeout=30),
        )
        return ClientFactory(config).create_from_url(self.url)


peer_url = peer_url_fixture()


@pytest.fixture(scope="module")
async def server(peer_url: tuple[ChatPeer, str]) -> AsyncIterator[A2AServer]:
    peer, url = peer_url
    port = free_port()
    store = InMemoryTaskStore()
    spec = SPEC.model_copy(update={"agent_url": url})
    app = create_a2a_app(
        spec, public_base_url=f"http://127.0.0.1:{port}", progress_interval_s=60, task_store=store
    )
    async with serve_prefixed(app, PREFIX, port) as base:
        yield A2AServer(peer, base, store)


def user_message(text: str, context_id: str = "") -> SendMessageRequest:
    message = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[Part(text=text)])
    message.context_id = context_id
    return SendMessageRequest(message=message)


async def send_blocking(
    server: A2AServer, text: str, binding=TransportProtocol.JSONRPC, context_id=""
) -> Task:
    client = await server.client(binding)
    async with client:
        responses = [r async for r in client.send_message(user_message(text, context_id))]
    assert len(responses) == 1 and responses[0].HasField("task")
    return responses[0].task


# --- card and health ---------------------------------------------------------------------------------


V1 = {"A2A-Version": "1.0"}
V03_ONLY_FIELDS = {"url", "preferredTransport", "protocolVersion", "additionalInterfaces"}


async def get_card(app, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        response = await client.get("/.well-known/agent-card.json", headers=headers)
    assert response.status_code == 200, response.text
    return response


async def test_v1_card_is_valid_for_the_1_0_schema_and_has_no_0_3_fields() -> None:
    app = create_a2a_app(SPEC, public_base_url="https://agents.example.com/")
    response = await get_card(app, V1)
    card = response.json()
    # The SDK's 1.0 AgentCard, strictly: an unknown field (a 0.3 one) would raise ParseError.
    parsed = json_format.ParseDict(card, AgentCard(), ignore_unknown_fields=False)
    assert parsed.name == "weather" and not V03_ONLY_FIELDS & card.keys()
    assert card["description"] == SPEC.description and card["version"] == "1.0.0"
    assert card["capabilities"]["streaming"] is True
    assert card["defaultInputModes"] == ["text/plain"] and card["defaultOutputModes"] == ["text/plain"]
    assert [(s["id"], s["tags"], s["examples"]) for s in card["skills"]] == [
        ("forecast", ["forecast"], ["Paris?"])
    ]
    interfaces = {(i["protocolBinding"], i["protocolVersion"]): i["url"] for i in card["supportedInterfaces"]}
    assert interfaces == {
        ("JSONRPC", "1.0"): "https://agents.example.com/a2a-weather/",
        ("HTTP+JSON", "1.0"): "https://agents.example.com/a2a-weather",
        ("JSONRPC", "0.3"): "https://agents.example.com/a2a-weather/",
        ("HTTP+JSON", "0.3"): "https://agents.example.com/a2a-weather",
    }
    assert response.headers["vary"] == "A2A-Version"


@pytest.mark.parametrize("headers", [None, {"A2A-Version": ""}, {"A2A-Version": "0.3"}])
async def test_v03_card_for_clients_without_a_1_x_version_header(headers: dict[str, str] | None) -> None:
    app = create_a2a_app(SPEC, public_base_url="https://agents.example.com/")
    card = (await get_card(app, headers)).json()
    parsed = AgentCardV03.model_validate(card)  # the SDK's 0.3 card model
    assert "supportedInterfaces" not in card and V03_ONLY_FIELDS <= card.keys()
    assert (parsed.name, parsed.description, parsed.version) == ("weather", SPEC.description, "1.0.0")
    assert (card["url"], card["preferredTransport"], card["protocolVersion"]) == (
        "https://agents.example.com/a2a-weather/",
        "JSONRPC",
        "0.3",
    )
    assert card["additionalInterfaces"] == [
        {"transport": "HTTP+JSON", "url": "https://agents.example.com/a2a-weather"}
    ]
    assert card["capabilities"]["streaming"] is True and card["skills"][0]["tags"] == ["forecast"]


async def test_card_etag_revalidates_per_version() -> None:
    app = create_a2a_app(SPEC, public_base_url="https://agents.example.com/")
    v1, v03 = (await get_card(app, V1)).headers["etag"], (await get_card(app)).headers["etag"]
    assert v1 != v03 and v1.startswith('W/"')
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        path = "/.well-known/agent-card.json"
        assert (await client.get(path, headers=V1 | {"If-None-Match": v1})).status_code == 304
        assert (await client.get(path, headers={"If-None-Match": v1})).status_code == 200  # the 0.3 card
        assert (await client.get(path, headers={"If-None-Match": v03})).status_code == 304


async def test_card_public_base_defaults_to_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://svc.example.org")
    get_settings.cache_clear()
    try:
        app = create_a2a_app(SPEC)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    card = (await get_card(app, V1)).json()
    assert {i["url"] for i in card["supportedInterfaces"]} == {
        "https://svc.example.org/a2a-weather",
        "https://svc.example.org/a2a-weather/",
    }
    assert (await get_card(app)).json()["url"] == "https://svc.example.org/a2a-weather/"


def test_args_override_spec_and_generic_args_need_card_fields() -> None:
    resolved = A2AAgentArgs(description="Other text", route_prefix="/w2").resolve(SPEC)
    assert (resolved.name, resolved.description, resolved.route_prefix) == ("weather", "Other text", "/w2")
    generic = A2AAgentArgs(name="travel", description="Plans trips.").resolve(None)
    assert (generic.agent_url, generic.route_prefix) == ("/travel-agent", "/a2a-travel")
    with pytest.raises(ValueError, match="miss description"):
        A2AAgentArgs(name="x").resolve(None)
    with pytest.raises(ValidationError):
        A2AAgentArgs.model_validate({"name": "x", "nmu_cpus": 1})  # typos in a config fail loudly


def test_builder_takes_the_agents_own_spec() -> None:
    """``a2a_app_builder(SPEC, skills=...)`` in an agent file: name and description from its AgentSpec."""
    agent_spec = SimpleNamespace(name="research", description="Researches the web.")
    build = a2a_app_builder(agent_spec, skills=[A2ASkill(id="web", name="Web", description="Reads pages.")])
    app = build(A2AAgentArgs(public_base_url="https://x.example", num_cpus=0.05))
    assert app._bound_deployment.name == "research-a2a"
    assert app._bound_deployment.ray_actor_options["num_cpus"] == 0.05
    spec, options, admission = app._bound_deployment.init_args
    assert admission == {"max_running": 200, "max_waiting": 64, "wait_s": 30.0, "retry_after_s": 5}
    assert (spec["name"], spec["agent_url"], spec["route_prefix"]) == (
        "research",
        "/research-agent",
        "/a2a-research",
    )
    assert spec["skills"][0]["id"] == "web" and options["public_base_url"] == "https://x.example"
    assert a2a_app_builder()(A2AAgentArgs(name="n", description="d"))._bound_deployment.name == "n-a2a"


async def test_health_reports_whether_chat_is_reachable(server: A2AServer) -> None:
    async with httpx.AsyncClient() as client:
        assert (await client.get(server.url + "/health")).json() == {
            "ready": True,
            "agent": "weather",
            "chat": True,
            "config_version": None,  # outside Serve
        }
        server.peer.ready = False
        try:
            assert (await client.get(server.url + "/health")).json()["ready"] is False
        finally:
            server.peer.ready = True
    down = create_a2a_app(SPEC.model_copy(update={"agent_url": f"http://127.0.0.1:{free_port()}"}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(down), base_url="http://test") as client:
        assert (await client.get("/health")).json() == {
            "ready": False,
            "agent": "weather",
            "chat": False,
            "config_version": None,
        }


# --- messages ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("binding", [TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON])
async def test_send_message_completes_with_answer_artifact(
    server: A2AServer, binding: TransportProtocol
) -> None:
    task = await send_blocking(server, "tools: weather in Paris?", binding)
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    answer = f"echo: tools: weather in Paris? [thread {task.context_id}]"
    assert [(a.name, get_artifact_text(a)) for a in task.artifacts] == [("answer", answer)]
    assert get_message_text(task.status.message) == answer
    history = [get_message_text(m) for m in task.history]
    assert history[0] == "tools: weather in Paris?"
    assert "Calling tool get_forecast." in history and "Tool get_forecast ok." in history


def recording_client(sent: list[tuple[str, str]]) -> httpx.AsyncClient:
    """An httpx client that records ``(path, A2A-Version header)`` of every request it sends."""

    async def record(request: httpx.Request) -> None:
        sent.append((request.url.path, request.headers.get("A2A-Version", "")))

    return httpx.AsyncClient(timeout=30, event_hooks={"request": [record]})


@pytest.mark.parametrize("binding", [TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON])
async def test_sdk_client_resolves_the_1_0_card_and_speaks_1_0(
    server: A2AServer, binding: TransportProtocol
) -> None:
    sent: list[tuple[str, str]] = []
    config = ClientConfig(
        streaming=False, supported_protocol_bindings=[binding], httpx_client=recording_client(sent)
    )
    client = await ClientFactory(config).create_from_url(server.url)
    async with client:
        [response] = [r async for r in client.send_message(user_message("hello 1.0"))]
    assert response.task.status.state == TaskState.TASK_STATE_COMPLETED
    card_request, *calls = sent
    assert card_request == (PREFIX + "/.well-known/agent-card.json", "1.0")
    assert calls and all(version == "1.0" for _, version in calls)


@pytest.mark.parametrize("binding", [TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON])
async def test_sdk_client_on_the_0_3_card_speaks_0_3(server: A2AServer, binding: TransportProtocol) -> None:
    """Without the header the card is the 0.3 one: the SDK reads it and speaks 0.3 on each binding."""
    sent: list[tuple[str, str]] = []
    async with httpx.AsyncClient(timeout=30) as bare:
        card = await A2ACardResolver(bare, server.url).get_agent_card()
    assert {i.protocol_version for i in card.supported_interfaces} == {"0.3"}
    config = ClientConfig(
        streaming=False, supported_protocol_bindings=[binding], httpx_client=recording_client(sent)
    )
    client = ClientFactory(config).create(card)
    async with client:
        [response] = [r async for r in client.send_message(user_message("hello 0.3"))]
    assert response.task.status.state == TaskState.TASK_STATE_COMPLETED
    assert get_artifact_text(response.task.artifacts[0]).startswith("echo: hello 0.3")
    assert sent and all(version == "0.3" for _, version in sent)


async def test_raw_0_3_client_works_from_the_card_alone(server: A2AServer) -> None:
    """A 0.3 client: no version header, URLs taken from ``url`` and ``additionalInterfaces``."""
    async with httpx.AsyncClient(timeout=30) as client:
        card = (await client.get(server.url + "/.well-known/agent-card.json")).json()
        assert card["preferredTransport"] == "JSONRPC" and card["protocolVersion"] == "0.3"
        rpc = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "message/send",
            "params": {
                "message": {
                    "kind": "message",
                    "messageId": uuid.uuid4().hex,
                    "role": "user",
                    "parts": [{"kind": "text", "text": "via card url"}],
                }
            },
        }
        result = (await client.post(card["url"], json=rpc)).json()["result"]
        assert result["status"]["state"] == "completed"
        [rest] = [i["url"] for i in card["additionalInterfaces"] if i["transport"] == "HTTP+JSON"]
        body = {
            "message": {
                "messageId": uuid.uuid4().hex,
                "role": "ROLE_USER",
                "content": [{"text": "via rest"}],
            },
            "configuration": {"blocking": True},
        }
        response = await client.post(rest + "/v1/message:send", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["task"]["artifacts"][0]["parts"][0]["text"].startswith("echo: via rest")


def metadata_keys(value: object) -> set[str]:
    """Every key inside every ``metadata`` object of a JSON document."""
    keys: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "metadata" and isinstance(item, dict):
                keys |= _all_keys(item)
            keys |= metadata_keys(item)
    elif isinstance(value, list):
        for item in value:
            keys |= metadata_keys(item)
    return keys


def _all_keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for item in value.values() for k in _all_keys(item)}
    if isinstance(value, list):
        return {k for item in value for k in _all_keys(item)}
    return set()


async def test_task_metadata_uses_camel_case_keys(server: A2AServer) -> None:
    task = await send_blocking(server, "tools: metadata please", TransportProtocol.HTTP_JSON)
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{server.url}/tasks/{task.id}", headers=V1)
    assert response.status_code == 200, response.text
    stored = response.json()
    metadata = stored["metadata"]
    assert datetime.fromisoformat(metadata["startedAt"]).tzinfo is not None
    assert metadata["threadId"] == thread_id_for_context(stored["contextId"])
    assert metadata["runId"] == "run-1"  # the peer's chat run
    usage = {"promptTokens": 3, "completionTokens": 7}
    assert stored["artifacts"][0]["metadata"] == {"usage": usage}
    assert stored["status"]["message"]["metadata"] == {"usage": usage}
    progress = [m["metadata"] for m in stored["history"] if m.get("metadata")]
    assert {"event": "tool_call", "tool": "get_forecast"} in progress
    assert {"event": "tool_result", "tool": "get_forecast", "status": "ok"} in progress
    keys = metadata_keys(stored)
    assert keys >= {"startedAt", "threadId", "runId", "usage", "promptTokens", "completionTokens"}
    assert not [key for key in keys if "_" in key], keys


async def test_v03_rest_message_send(server: A2AServer) -> None:
    body = {
        "message": {"messageId": "m1", "role": "ROLE_USER", "content": [{"text": "hi"}]},
        "configuration": {"blocking": True},
    }
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(server.url + "/v1/message:send", json=body)
    assert response.status_code == 200, response.text
    task = response.json()["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert task["artifacts"][0]["parts"][0]["text"] == f"echo: hi [thread {task['contextId']}]"


async def test_v03_jsonrpc_message_send(server: A2AServer) -> None:
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "message/send",
        "params": {
            "message": {
                "kind": "message",
                "messageId": "m2",
                "role": "user",
                "parts": [{"kind": "text", "text": "hello"}],
            }
        },
    }
    async with httpx.AsyncClient(timeout=30) as client:  # no A2A-Version header: a 0.3 client
        response = await client.post(server.url + "/", json=request)
    result = response.json()["result"]
    assert result["status"]["state"] == "completed"
    assert result["artifacts"][0]["parts"][0]["text"].startswith("echo: hello")


async def test_streaming_reports_progress_then_artifact_then_completed(server: A2AServer) -> None:
    client = await server.client(TransportProtocol.JSONRPC, streaming=True)
    async with client:
        events: list[StreamResponse] = [
            r async for r in client.send_message(user_message("tools: rain in Oslo?"))
        ]
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "task" and events[0].task.status.state == TaskState.TASK_STATE_SUBMITTED
    assert kinds[-2:] == ["artifact_update", "status_update"]
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    working = [
        get_message_text(e.status_update.status.message)
        for e in events[1:-2]
        if e.status_update.status.state == TaskState.TASK_STATE_WORKING
    ]
    assert working[:3] == ["Working on the request.", "Calling tool get_forecast.", "Tool get_forecast ok."]
    # The peer streamed the answer in many tokens; progress coalesced them into one update.
    assert len(working) == 4 and working[3].strip().startswith("echo: tools: rain in Oslo?")
    assert get_artifact_text(events[-2].artifact_update.artifact).startswith("echo: tools: rain in Oslo?")


async def test_context_maps_to_a_stable_thread(server: A2AServer) -> None:
    first = await send_blocking(server, "first")
    second = await send_blocking(server, "second", context_id=first.context_id)
    assert second.context_id == first.context_id and second.id != first.id
    threads = [r["thread_id"] for r in server.peer.requests if r["user_request"] in ("first", "second")]
    assert threads == [first.context_id, first.context_id]


def test_thread_id_for_context_is_valid_and_deterministic() -> None:
    assert thread_id_for_context("ctx-1.a:b_c") == "ctx-1.a:b_c"
    for odd in ("user@example.com/" + "x" * 200, "-leading-dash", "x" * 129, "ünïcode"):
        mapped = thread_id_for_context(odd)
        assert mapped == thread_id_for_context(odd) and mapped != thread_id_for_context(odd + "y")
        assert mapped.startswith("a2a-") and re.match(THREAD_ID_PATTERN, mapped)


async def test_empty_message_is_rejected(server: A2AServer) -> None:
    client = await server.client()
    request = SendMessageRequest(
        message=Message(role=Role.ROLE_USER, message_id="e1", parts=[Part(text=" ")])
    )
    async with client:
        [response] = [r async for r in client.send_message(request)]
    assert response.task.status.state == TaskState.TASK_STATE_REJECTED


# --- failures ----------------------------------------------------------------------------------------


async def test_agent_error_event_fails_the_task(server: A2AServer) -> None:
    task = await send_blocking(server, "fail: please")
    assert task.status.state == TaskState.TASK_STATE_FAILED
    assert get_message_text(task.status.message) == (
        "The agent failed: model backend refused the request (llm_error)"
    )
    assert not task.artifacts
    assert task.metadata["runId"] == "run-1"  # a failed run is traceable to its chat run too


async def test_agent_http_error_fails_the_task(server: A2AServer) -> None:
    task = await send_blocking(server, "http500")
    assert task.status.state == TaskState.TASK_STATE_FAILED
    assert "answered HTTP 500" in get_message_text(task.status.message)
    assert "agent exploded" in get_message_text(task.status.message)


async def test_agent_connection_drop_fails_the_task(server: A2AServer) -> None:
    task = await send_blocking(server, "crash: now")
    assert task.status.state == TaskState.TASK_STATE_FAILED
    assert get_message_text(task.status.message).startswith("Connection to the agent at ")
    assert "broke: RemoteProtocolError" in get_message_text(task.status.message)


async def test_unreachable_agent_fails_the_task_clearly() -> None:
    port, dead = free_port(), f"http://127.0.0.1:{free_port()}"
    app = create_a2a_app(
        SPEC.model_copy(update={"agent_url": dead}), public_base_url=f"http://127.0.0.1:{port}"
    )
    async with serve_prefixed(app, PREFIX, port):
        server = A2AServer(ChatPeer(), f"http://127.0.0.1:{port}", InMemoryTaskStore())
        task = await send_blocking(server, "anyone there?")
    assert task.status.state == TaskState.TASK_STATE_FAILED
    text = get_message_text(task.status.message)
    assert text.startswith(f"Agent at {dead}/chat unreachable: ConnectError")
    assert "runId" not in task.metadata and task.metadata["threadId"]  # no chat run ever started


async def test_task_timeout_fails_the_task_and_closes_the_stream(peer_url: tuple[ChatPeer, str]) -> None:
    peer, url = peer_url
    port = free_port()
    spec = SPEC.model_copy(update={"agent_url": url})
    app = create_a2a_app(spec, public_base_url=f"http://127.0.0.1:{port}", task_timeout_s=0.5)
    async with serve_prefixed(app, PREFIX, port):
        server = A2AServer(peer, f"http://127.0.0.1:{port}", InMemoryTaskStore())
        task = await send_blocking(server, "slow: timeout", context_id="ctx-timeout")
    assert task.status.state == TaskState.TASK_STATE_FAILED
    assert get_message_text(task.status.message) == "The agent did not finish within 0.5 s."
    await wait_for(lambda: "ctx-timeout" in peer.closed)


# --- cancel ------------------------------------------------------------------------------------------


async def wait_for(condition, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("binding", [TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON])
async def test_cancel_closes_the_chat_stream(server: A2AServer, binding: TransportProtocol) -> None:
    context_id = f"ctx-cancel-{binding.name}"
    server.peer.slow_started.clear()
    client = await server.client(binding, streaming=True)
    async with client:
        stream = client.send_message(user_message("slow: take your time", context_id))
        first = await anext(stream)
        task_id = first.task.id
        await wait_for(server.peer.slow_started.is_set)
        assert context_id not in server.peer.closed
        canceled = await client.cancel_task(CancelTaskRequest(id=task_id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED
        await wait_for(lambda: context_id in server.peer.closed)  # the agent saw its /chat stream close
        await stream.aclose()
        stored = await client.get_task(GetTaskRequest(id=task_id))
    assert stored.status.state == TaskState.TASK_STATE_CANCELED
    assert get_message_text(stored.status.message) == "Task canceled."


async def test_cancel_of_task_not_running_here_is_recorded(server: A2AServer) -> None:
    """A task in the store that this replica does not run (another replica's, with a shared store)."""
    orphan = Task(
        id="orphan-1", context_id="ctx-orphan", status=TaskStatus(state=TaskState.TASK_STATE_WORKING)
    )
    await server.store.save(orphan, ServerCallContext())
    client = await server.client()
    async with client:
        canceled = await client.cancel_task(CancelTaskRequest(id="orphan-1"))
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED
    stored = await server.store.get("orphan-1", ServerCallContext())
    assert stored is not None and stored.status.state == TaskState.TASK_STATE_CANCELED
