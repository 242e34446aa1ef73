"""Config changes roll out while agents keep serving: nothing lost, for both kinds of update Serve knows.

While 20 weather and 5 travel chats stream without a pause (each finished chat is followed by a new
one), the offline multi stack gets, in turn:

1. a lightweight update: ``deployments:`` overrides on the weather and travel agents (Serve updates the
   running replicas in place);
2. an update that restarts replicas: a ``runtime_env`` env var of the weather agent (a new code version);
3. the same for the LLM app, which every agent run calls several times.

Every chat that was sent, before, during or after either roll-out, ends with ``done`` and no error; the
changed apps' ``/health`` shows the new ``config_version``; the weather agent keeps its replica through
the first change and gets a new one with the second; apps whose config did not change keep their
version (read before the LLM's change). The stack is given its original config back at the end.
"""

import asyncio
import copy
import json
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from protocols.chat_client import ChatClient, ChatClientError
from protocols.events import Done, Error
from tests.support.stack import ROOT, ServeStack, health, weather_replica

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

WEATHER_STREAMS, TRAVEL_STREAMS = 20, 5
UNCHANGED = ("/llm", "/mcp-weather", "/research-agent", "/a2a-weather")


@dataclass
class Traffic:
    """What the chat workers saw: one outcome per chat sent ('ok' or the failure's code)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    failures: list[str] = field(default_factory=list)

    def answered(self) -> int:
        return self.outcomes["ok"]


async def _one_chat(client: ChatClient, text: str) -> str:
    error: str | None = None
    done = False
    async for event in client.stream(text, thread_id=f"rollout-{uuid.uuid4().hex[:12]}"):
        if isinstance(event, Error):
            error = f"{event.code}: {event.message}"
        elif isinstance(event, Done):
            done = True
    return error or ("ok" if done else "no_done")


async def _worker(
    http: httpx.AsyncClient, url: str, text: str, stop: asyncio.Event, traffic: Traffic
) -> None:
    client = ChatClient(url, http=http, stream_timeout=httpx.Timeout(300, connect=60))
    while not stop.is_set():
        traffic.sent += 1
        try:
            outcome = await _one_chat(client, text)
        except ChatClientError as exc:
            outcome = f"{exc.code}: {exc}"
        traffic.outcomes["ok" if outcome == "ok" else "failed"] += 1
        if outcome != "ok":
            traffic.failures.append(outcome)


def _health(stack: ServeStack, route: str) -> dict[str, Any]:
    return health(stack.base_url, route)


def _replica(stack: ServeStack) -> str:
    return weather_replica(stack.base_url)


def _wait_version(stack: ServeStack, route: str, old: str, timeout_s: float = 120) -> str:
    """The route's config_version once it differs from ``old`` (health caches it for a few seconds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        version = _health(stack, route).get("config_version")
        if version and version != old:
            return str(version)
        time.sleep(1)
    raise AssertionError(f"{route} still serves config_version {old} after {timeout_s:.0f}s")


def _changed(apps: dict[str, dict[str, Any]], change: dict[str, Any]) -> dict[str, Any]:
    config = {"applications": []}
    for name, extra in change.items():
        app = copy.deepcopy(apps[name])
        for key, value in extra.items():
            if key == "env_vars":
                app.setdefault("runtime_env", {}).setdefault("env_vars", {}).update(value)
            else:
                app[key] = value
        config["applications"].append(app)
    return config


async def _roll_out(
    stack: ServeStack, traffic: Traffic, original: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Both updates, each under load; returns what the checks need."""
    before = {
        route: _health(stack, route)["config_version"]
        for route in ("/weather-agent", "/travel-agent", *UNCHANGED)
    }
    assert all(before.values()), before  # every app reports a version under Serve
    replica_before = await asyncio.to_thread(_replica, stack)

    answered_before = traffic.answered()
    light = {
        "weather_agent": {"deployments": [{"name": "weather-chat", "max_ongoing_requests": 60}]},
        "travel_agent": {"deployments": [{"name": "travel-chat", "max_ongoing_requests": 60}]},
    }
    await asyncio.to_thread(stack.deploy, _changed(original, light))
    light_version = await asyncio.to_thread(_wait_version, stack, "/weather-agent", before["/weather-agent"])
    travel_version = await asyncio.to_thread(_wait_version, stack, "/travel-agent", before["/travel-agent"])
    replica_light = await asyncio.to_thread(_replica, stack)
    answered_light = traffic.answered()

    heavy = {**light, "weather_agent": {**light["weather_agent"], "env_vars": {"ROLLOUT_TEST_MARK": "2"}}}
    await asyncio.to_thread(stack.deploy, _changed(original, heavy))
    heavy_version = await asyncio.to_thread(_wait_version, stack, "/weather-agent", light_version)
    replica_heavy = await asyncio.to_thread(_replica, stack)
    await asyncio.sleep(3)  # a few more chats on the new replica
    after = {route: _health(stack, route)["config_version"] for route in UNCHANGED}
    answered_heavy = traffic.answered()

    # The LLM app restarts under the agents' runs: calls in flight finish on the old replica, new ones
    # wait in the proxy for the new one (or are made again where a connection broke before a token).
    llm = {**heavy, "llm": {"env_vars": {"ROLLOUT_TEST_MARK": "3"}}}
    await asyncio.to_thread(stack.deploy, _changed(original, llm))
    llm_version = await asyncio.to_thread(_wait_version, stack, "/llm", before["/llm"])
    answered_llm = traffic.answered()
    while traffic.answered() < answered_llm + WEATHER_STREAMS:  # chats finish on the new LLM replica
        await asyncio.sleep(0.5)
    return {
        "before": before,
        "versions": (light_version, travel_version, heavy_version, llm_version),
        "replicas": (replica_before, replica_light, replica_heavy),
        "after": after,
        "answered": (answered_before, answered_light, answered_heavy, traffic.answered()),
    }


async def _under_load(
    stack: ServeStack, original: dict[str, dict[str, Any]]
) -> tuple[Traffic, dict[str, Any]]:
    traffic, stop = Traffic(), asyncio.Event()
    limits = httpx.Limits(max_connections=WEATHER_STREAMS + TRAVEL_STREAMS + 10)
    async with httpx.AsyncClient(limits=limits) as http:
        workers = [
            asyncio.create_task(
                _worker(http, f"{stack.base_url}/weather-agent", "Weather in Seattle?", stop, traffic)
            )
            for _ in range(WEATHER_STREAMS)
        ] + [
            asyncio.create_task(
                _worker(http, f"{stack.base_url}/travel-agent", "Plan a 3-day trip to Lisbon.", stop, traffic)
            )
            for _ in range(TRAVEL_STREAMS)
        ]
        while traffic.answered() < WEATHER_STREAMS:  # the load is really on before the first change
            await asyncio.sleep(0.5)
        try:
            seen = await _roll_out(stack, traffic, original)
        finally:
            stop.set()
            await asyncio.gather(*workers)
    return traffic, seen


def test_config_changes_roll_out_under_load_and_lose_nothing(offline_multi: ServeStack) -> None:
    stack = offline_multi
    original = {name: copy.deepcopy(app) for name, app in stack.apps.items()}
    try:
        traffic, seen = asyncio.run(_under_load(stack, original))
        counts = {"sent": traffic.sent, "answered": traffic.answered(), "failed": traffic.outcomes["failed"]}
        logger.info(
            "roll-outs under load: %s; answered before/after light/after heavy/after LLM %s",
            counts,
            seen["answered"],
        )
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        (ROOT / "test-artifacts" / "rollout.json").write_text(
            json.dumps({**counts, "phases": seen["answered"]})
        )
        # Nothing lost: every chat sent was answered with done and no error, during both roll-outs too.
        assert traffic.failures == [], traffic.failures[:5]
        assert traffic.answered() == traffic.sent
        before, light, heavy, end = seen["answered"]
        # Chats kept finishing across each change.
        assert before < light < heavy < end, seen["answered"]
        # What changed shows in /health; what did not, kept its version.
        light_version, travel_version, heavy_version, llm_version = seen["versions"]
        assert len({seen["before"]["/weather-agent"], light_version, heavy_version}) == 3
        assert travel_version != seen["before"]["/travel-agent"]
        assert llm_version != seen["before"]["/llm"]
        assert seen["after"] == {route: seen["before"][route] for route in UNCHANGED}
        # The lightweight update kept the weather agent's replica; the env var change replaced it.
        replica_before, replica_light, replica_heavy = seen["replicas"]
        assert replica_light == replica_before
        assert replica_heavy != replica_light
    finally:
        stack.deploy({"applications": list(original.values())})
        stack.wait_ready("/weather-agent")
        stack.wait_ready("/travel-agent")
