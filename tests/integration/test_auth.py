"""Identity on the real stack (``AUTH=on``), on SQLite and on PostgreSQL: keys from the real
``platform-keys`` console script, every route guarded, ownership, delegation through the travel flow,
budgets, revocation, and the official clients (openai, mcp, a2a-sdk 1.0 and a raw 0.3 call).

The whole multi-agent config is deployed with ``AUTH=on`` and ``DATABASE_URL`` (the same apps as
``AUTH=on OFFLINE=1 make run-multi``); the module puts the stack back as it found it afterwards.
"""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from a2a.client import AuthInterceptor, ClientCallContext, ClientConfig, ClientFactory, CredentialService
from a2a.types import GetTaskRequest, ListTasksRequest, Message, Part, Role, SendMessageRequest
from a2a.utils.constants import TransportProtocol
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from platform_core.serve_config import for_local_run, load_config
from protocols.events import ChatEvent, Done, Error, Metadata, ToolResult, parse_sse_lines
from tests.support.stack import POSTGRES_URL, ROOT, ServeStack, deployed_over, postgres_reachable

# The first test of each database also waits for the whole config to restart (minutes on 2 cores).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

READY_ROUTES = (
    "/weather-agent",
    "/research-agent",
    "/travel-agent",
    "/packing-agent",
    "/a2a-weather",
    "/a2a-research",
    "/a2a-packing",
)
TRIP = "Plan a 3-day trip to Lisbon next week."
PLATFORM_KEYS = Path(sys.executable).with_name("platform-keys")


@dataclass
class AuthStack:
    stack: ServeStack
    database_url: str
    run: str  # a suffix that keeps this run's key names apart from earlier runs on the same database

    def url(self, path: str) -> str:
        return f"{self.stack.base_url}{path}"

    def keys(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the real ``platform-keys`` console script on the stack's database."""
        env = {**os.environ, "DATABASE_URL": self.database_url}
        done = subprocess.run(
            [str(PLATFORM_KEYS), *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        return done

    def usage(self, name: str) -> list[int]:
        """Today's runs, prompt and completion tokens and tool calls of a key (``platform-keys usage``)."""
        row = next(line for line in self.keys("usage", name).stdout.splitlines() if line.startswith(name))
        return [int(cell) for cell in row.split() if cell.isdigit()]

    def create_key(self, name: str, *scopes: str, **limits: int) -> str:
        """A new key's secret: the last line of ``platform-keys create``'s stdout."""
        args = ["create", "--name", f"{name}-{self.run}"]
        for scope in scopes:
            args += ["--scope", scope]
        for option, value in limits.items():
            args += [f"--{option.replace('_', '-')}", str(value)]
        return self.keys(*args).stdout.strip().splitlines()[-1]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat(
    auth: AuthStack, route: str, body: dict[str, Any], key: str | None, timeout: float = 300
) -> tuple[httpx.Response, list[ChatEvent]]:
    headers = bearer(key) if key else {}
    with httpx.stream(
        "POST", auth.url(f"{route}/chat"), json=body, headers=headers, timeout=timeout
    ) as response:
        if response.status_code != 200:
            response.read()  # an error body, kept for .json()
            return response, []
        lines = list(response.iter_lines())
    return response, parse_sse_lines(lines)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def auth_stack(
    request: pytest.FixtureRequest, serve_stack: ServeStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthStack]:
    stack = serve_stack
    if request.param == "postgresql":
        if not postgres_reachable():
            pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 on this machine")
        database_url = POSTGRES_URL
    else:
        database_url = f"sqlite:///{tmp_path_factory.mktemp('auth-data') / 'agents.db'}"
    config = for_local_run(
        load_config(ROOT / "serve_multi_config.yaml"),
        port=stack.port,
        offline=True,
        env={"PYTHONPATH": str(ROOT), "AUTH": "on", "DATABASE_URL": database_url},
    )
    # Every app restarts: new env vars, new worker processes. Health is public, and each agent found its
    # tools with the platform token once it is ready.
    with deployed_over(stack, config, READY_ROUTES):
        yield AuthStack(stack, database_url, uuid.uuid4().hex[:8])


def test_every_route_needs_a_credential_but_health_and_cards(auth_stack: AuthStack) -> None:
    guarded = [
        ("POST", "/weather-agent/chat", {"user_request": "Weather in Paris?"}),
        ("GET", "/weather-agent/threads/abc", None),
        ("GET", "/llm/v1/models", None),
        ("POST", "/llm/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        ("POST", "/mcp-weather/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        ("POST", "/a2a-weather/", {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}),
        ("GET", "/a2a-weather/tasks", None),
    ]
    for method, path, body in guarded:
        response = httpx.request(method, auth_stack.url(path), json=body, timeout=30)
        assert response.status_code == 401, (path, response.status_code, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer"), path
        assert response.json()["error"]["code"] == "unauthenticated", path
        forged = httpx.request(
            method, auth_stack.url(path), json=body, headers=bearer("rapd_e30.AAAA"), timeout=30
        )
        assert forged.status_code == 401, (path, "a forged delegation", forged.text)
    for route in READY_ROUTES:
        assert httpx.get(auth_stack.url(f"{route}/health"), timeout=30).status_code == 200, route
    card = httpx.get(
        auth_stack.url("/a2a-weather/.well-known/agent-card.json"), headers={"A2A-Version": "1.0"}, timeout=30
    ).json()
    assert card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"].lower() == "bearer"
    assert card["securityRequirements"] == [{"schemes": {"bearer": {}}}]


def test_a_key_reaches_only_its_scopes(auth_stack: AuthStack) -> None:
    weather = auth_stack.create_key("weather-only", "agent:weather")
    response = httpx.get(auth_stack.url("/llm/v1/models"), headers=bearer(weather), timeout=30)
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    response, _ = chat(auth_stack, "/research-agent", {"user_request": "Lisbon history"}, weather)
    assert response.status_code == 403
    response, events = chat(auth_stack, "/weather-agent", {"user_request": "Weather in Paris?"}, weather)
    assert response.status_code == 200 and isinstance(events[-1], Done) and "Paris" in events[-1].answer
    assert not [e for e in events if isinstance(e, Error)], events

    # The agents as OpenAI models: the same key, the same scopes.
    client = openai.OpenAI(base_url=auth_stack.url("/openai/v1"), api_key=weather, max_retries=0, timeout=300)
    assert [model.id for model in client.models.list()] == ["weather"]
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="research", messages=[{"role": "user", "content": "Lisbon?"}])
    answer = client.chat.completions.create(
        model="weather", messages=[{"role": "user", "content": "Weather in Paris?"}]
    )
    assert "Paris" in (answer.choices[0].message.content or "")
    anonymous = httpx.get(auth_stack.url("/openai/v1/models"), timeout=30)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthenticated"


def test_travel_only_key_runs_the_whole_flow_and_pays_for_every_hop(auth_stack: AuthStack) -> None:
    travel = auth_stack.create_key("traveller", "agent:travel")
    response, events = chat(auth_stack, "/travel-agent", {"user_request": TRIP}, travel)
    assert response.status_code == 200, response.text
    results = {e.name: e for e in events if isinstance(e, ToolResult)}
    assert {name: r.status for name, r in results.items()} == {
        "a2a_weather": "ok",
        "a2a_research": "ok",
        "a2a_packing": "ok",
    }, results
    assert "Lisbon" in results["a2a_weather"].content
    done = events[-1]
    assert isinstance(done, Done) and "Lisbon" in done.answer
    # The same key may not call the delegates itself: only the platform's hops may.
    direct, _ = chat(auth_stack, "/weather-agent", {"user_request": "Weather in Paris?"}, travel)
    assert direct.status_code == 403

    own = done.usage.prompt_tokens + done.usage.completion_tokens
    # /llm counts a call's tokens as its answer ends, which may be a moment after the agent's done.
    deadline = time.monotonic() + 10
    while True:
        runs, prompt, completion = auth_stack.usage(f"traveller-{auth_stack.run}")[:3]
        if (runs == 4 and prompt + completion > own > 0) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert runs == 4, "one travel run and its three delegated runs"
    assert prompt + completion > own > 0, f"the delegates' tokens count too: {prompt}+{completion} vs {own}"

    # The same rows over HTTP, for admin only.
    usage = auth_stack.url(f"/travel-agent/usage?key=traveller-{auth_stack.run}")
    assert httpx.get(usage, headers=bearer(travel), timeout=30).status_code == 403
    admin = auth_stack.create_key("usage-admin", "admin")
    rows = httpx.get(usage, headers=bearer(admin), timeout=30).json()["usage"]
    assert [row["principal_name"] for row in rows] == [f"traveller-{auth_stack.run}"]
    assert rows[0]["runs"] == 4 and rows[0]["prompt_tokens"] + rows[0]["completion_tokens"] > own


def test_threads_belong_to_their_creator(auth_stack: AuthStack) -> None:
    alice = auth_stack.create_key("alice", "agent:weather")
    bob = auth_stack.create_key("bob", "agent:weather")
    admin = auth_stack.create_key("admin", "admin")
    response, events = chat(auth_stack, "/weather-agent", {"user_request": "Weather in Paris?"}, alice)
    assert response.status_code == 200
    thread_id = next(e for e in events if isinstance(e, Metadata)).thread_id
    thread = auth_stack.url(f"/weather-agent/threads/{thread_id}")
    assert httpx.get(thread, headers=bearer(alice), timeout=30).status_code == 200

    missing = httpx.get(
        auth_stack.url("/weather-agent/threads/no-such-thread"), headers=bearer(bob), timeout=30
    )
    for answer in (
        httpx.get(thread, headers=bearer(bob), timeout=30),
        httpx.delete(thread, headers=bearer(bob), timeout=30),
        chat(auth_stack, "/weather-agent", {"user_request": "And Rome?", "thread_id": thread_id}, bob)[0],
    ):
        assert answer.status_code == 404, answer.text
        # Exactly what an unknown thread gets: nothing says the thread exists.
        assert answer.json()["error"]["code"] == missing.json()["error"]["code"] == "thread_not_found"
    assert httpx.get(thread, headers=bearer(admin), timeout=30).status_code == 200
    assert httpx.delete(thread, headers=bearer(alice), timeout=30).status_code == 204


class KeyCredentials(CredentialService):
    def __init__(self, key: str) -> None:
        self.key = key

    async def get_credentials(
        self, security_scheme_name: str, context: ClientCallContext | None
    ) -> str | None:
        return self.key


async def test_a2a_sdk_client_with_a_key_and_task_ownership(auth_stack: AuthStack) -> None:
    alice = auth_stack.create_key("a2a-alice", "agent:weather")
    bob = auth_stack.create_key("a2a-bob", "agent:weather")
    base = auth_stack.url("/a2a-weather")

    async def client_for(key: str):  # the SDK's own AuthInterceptor, fed by the card's bearer scheme
        config = ClientConfig(
            streaming=False,
            supported_protocol_bindings=[TransportProtocol.JSONRPC],
            httpx_client=httpx.AsyncClient(timeout=120),
        )
        return await ClientFactory(config).create_from_url(
            base, interceptors=[AuthInterceptor(KeyCredentials(key))]
        )

    message = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[Part(text="Weather in Oslo?")])
    async with await client_for(alice) as client:
        responses = [r async for r in client.send_message(SendMessageRequest(message=message))]
        task = responses[-1].task
        assert task.id and "Oslo" in task.artifacts[0].parts[0].text
        assert (await client.get_task(GetTaskRequest(id=task.id))).id == task.id
        listed = await client.list_tasks(ListTasksRequest())
        assert task.id in {t.id for t in listed.tasks}
    async with await client_for(bob) as client:
        listed = await client.list_tasks(ListTasksRequest())
        assert task.id not in {t.id for t in listed.tasks}, "bob sees alice's task"
        with pytest.raises(Exception, match="(?i)not found"):
            await client.get_task(GetTaskRequest(id=task.id))

    # A 0.3 client (no A2A-Version header, 0.3 REST shapes) with a key works too.
    body = {
        "message": {"messageId": "m1", "role": "ROLE_USER", "content": [{"text": "Weather in Paris?"}]},
        "configuration": {"blocking": True},
    }
    assert httpx.post(f"{base}/v1/message:send", json=body, timeout=120).status_code == 401
    response = httpx.post(f"{base}/v1/message:send", json=body, headers=bearer(alice), timeout=120)
    assert response.status_code == 200, response.text
    assert "Paris" in response.json()["task"]["artifacts"][0]["parts"][0]["text"]


async def test_openai_and_mcp_clients_with_keys(auth_stack: AuthStack) -> None:
    llm_key = auth_stack.create_key("llm-user", "llm")
    client = openai.AsyncOpenAI(base_url=auth_stack.url("/llm/v1"), api_key=llm_key, max_retries=0)
    model = (await client.models.list()).data[0].id
    answer = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hello"}]
    )
    assert answer.choices[0].message.content and answer.usage and answer.usage.total_tokens > 0
    with pytest.raises(openai.AuthenticationError):
        await openai.AsyncOpenAI(
            base_url=auth_stack.url("/llm/v1"), api_key="rap_nope", max_retries=0
        ).models.list()

    mcp_key = auth_stack.create_key("mcp-user", "mcp:weather")
    async with (
        httpx.AsyncClient(headers=bearer(mcp_key), timeout=60) as http,
        streamable_http_client(auth_stack.url("/mcp-weather/mcp"), http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = {tool.name for tool in (await session.list_tools()).tools}
    assert {"geocode", "get_forecast"} <= tools
    web = httpx.post(
        auth_stack.url("/mcp-web-search/mcp"),
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers=bearer(mcp_key),
        timeout=30,
    )
    assert web.status_code == 403, "mcp:weather does not open the web search server"


def test_a_revoked_key_stops_within_five_seconds(auth_stack: AuthStack) -> None:
    key = auth_stack.create_key("soon-revoked", "llm")
    models = auth_stack.url("/llm/v1/models")
    assert httpx.get(models, headers=bearer(key), timeout=30).status_code == 200
    auth_stack.keys("revoke", f"soon-revoked-{auth_stack.run}")
    revoked_at = time.monotonic()
    while (status := httpx.get(models, headers=bearer(key), timeout=30).status_code) == 200:
        assert time.monotonic() - revoked_at < 5.5, "a revoked key still works after 5 s"
        time.sleep(0.2)
    assert status == 401


def test_requests_over_a_keys_rate_get_429_with_retry_after(auth_stack: AuthStack) -> None:
    models = auth_stack.url("/llm/v1/models")
    for attempt in range(2):  # the three calls of one attempt may straddle a minute's end: once more
        key = auth_stack.create_key(f"rpm-{attempt}", "llm", rpm=2)
        minute = int(time.time() // 60)
        statuses = [httpx.get(models, headers=bearer(key), timeout=30) for _ in range(3)]
        if int(time.time() // 60) == minute:
            break
    assert [r.status_code for r in statuses] == [200, 200, 429], [r.text for r in statuses]
    refused = statuses[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60


def test_a_budget_spent_mid_run_ends_it_with_budget_exceeded(auth_stack: AuthStack) -> None:
    # A budget the first model call of a run spends: the run's next call is refused.
    key = auth_stack.create_key("small-budget", "agent:weather", token_budget=20)
    response, events = chat(
        auth_stack, "/weather-agent", {"user_request": "Weather in Paris this week?"}, key
    )
    assert response.status_code == 200
    errors = [e for e in events if isinstance(e, Error)]
    assert [e.code for e in errors] == ["budget_exceeded"], events
    assert isinstance(events[-1], Done), "done follows, with the partial answer"
    assert any(isinstance(e, ToolResult) for e in events), "the run got as far as its first tool round"

    again = httpx.post(
        auth_stack.url("/weather-agent/chat"),
        json={"user_request": "Weather in Rome?"},
        headers=bearer(key),
        timeout=30,
    )
    assert again.status_code == 429 and again.json()["error"]["code"] == "budget_exceeded"
    assert int(again.headers["retry-after"]) >= 1
    client = openai.OpenAI(base_url=auth_stack.url("/openai/v1"), api_key=key, max_retries=0, timeout=60)
    with pytest.raises(openai.RateLimitError) as spent:
        client.chat.completions.create(model="weather", messages=[{"role": "user", "content": "Rome?"}])
    assert spent.value.code == "budget_exceeded" and int(spent.value.response.headers["retry-after"]) >= 1
