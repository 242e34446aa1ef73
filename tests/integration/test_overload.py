"""Overload on the real stack: a full agent replica queues a bounded line, then refuses with a JSON 503.

A second weather agent app with room for 2 runs and 1 waiting request, on a scripted model slowed down so
that its runs last many seconds, gets 2 chats and then 3 more at once: the 2 run, exactly 1 of the 3
waits and then runs, the other 2 get ``503 overloaded`` with ``Retry-After`` straight away. Every chat
that was admitted ends with ``done``.
"""

import copy
import threading
import time
from typing import Any

import httpx
import pytest

from protocols.events import Done, Metadata, parse_sse_lines
from tests.support.stack import ServeStack, deployed_over

pytestmark = pytest.mark.integration

ROUTE = "/weather-overload"
SLOW_LLM_ROUTE = "/llm-slow"
TOKEN_DELAY_MS = 40  # a weather answer is hundreds of chunks: each run lasts ~20 s


def overload_apps(stack: ServeStack) -> dict[str, Any]:
    """A slowed-down scripted model and a weather agent on it with room for 2 runs and 1 waiting."""
    config = stack.local_config("serve_multi_config.yaml", offline=True)
    apps = {app["name"]: app for app in config["applications"]}
    llm = copy.deepcopy(apps["llm"])
    llm.update(name="llm_slow", route_prefix=SLOW_LLM_ROUTE)
    llm["args"] = {**llm["args"], "backend": "scripted", "scripted_token_delay_ms": TOKEN_DELAY_MS}
    agent = copy.deepcopy(apps["weather_agent"])
    agent.update(name="weather_overload", route_prefix=ROUTE)
    agent["args"] = {
        **agent["args"],
        "min_replicas": 1,
        "max_replicas": 1,
        "max_ongoing_requests": 2,
        "max_queued_requests": 1,
        "queue_timeout_s": 300,
        "retry_after_s": 3,
        "llm_base_url": f"{stack.base_url}{SLOW_LLM_ROUTE}/v1",
    }
    return {**config, "applications": [llm, agent]}


class Chat(threading.Thread):
    """One chat on its own thread: its status, headers, events, and when its first line came."""

    def __init__(self, stack: ServeStack, text: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{stack.base_url}{ROUTE}/chat"
        self.text = text
        self.started = threading.Event()  # the response has begun (status known)
        self.response: httpx.Response | None = None
        self.lines: list[str] = []
        self.body = ""

    def run(self) -> None:
        with httpx.stream("POST", self.url, json={"user_request": self.text}, timeout=300) as response:
            self.response = response
            if response.status_code != 200:
                self.body = response.read().decode()
                self.started.set()
                return
            for line in response.iter_lines():
                self.lines.append(line)
                self.started.set()
        self.started.set()


def test_a_full_replica_queues_one_and_refuses_the_rest_with_a_json_503(offline_multi: ServeStack) -> None:
    stack = offline_multi
    with deployed_over(stack, overload_apps(stack), [ROUTE]):
        running = [Chat(stack, f"What is the weather in {city}?") for city in ("Paris", "Seattle")]
        for chat in running:
            chat.start()
        for chat in running:
            assert chat.started.wait(120), "a first chat never started"
            assert chat.response is not None and chat.response.status_code == 200

        extra = [Chat(stack, f"What is the weather in {city}?") for city in ("Berlin", "Tokyo", "Boston")]
        for chat in extra:
            chat.start()
        refused: list[Chat] = []
        deadline = time.monotonic() + 60
        while len(refused) < 2 and time.monotonic() < deadline:
            refused = [c for c in extra if c.response is not None and c.response.status_code != 200]
            time.sleep(0.05)
        # Refused while both first runs still stream: they were not waiting for a slot.
        assert len(refused) == 2, [c.response.status_code if c.response else None for c in extra]
        assert all(c.is_alive() for c in running), "the first runs ended before the refusals came"
        health = httpx.get(f"{stack.base_url}{ROUTE}/health", timeout=30)
        assert health.status_code == 200, "a full replica still answers its health probe"

        for chat in refused:
            assert chat.response is not None
            assert chat.response.status_code == 503
            assert chat.response.headers["retry-after"] == "3"
            assert chat.response.headers["content-type"] == "application/json"
            error = httpx.Response(503, content=chat.body).json()["error"]
            assert error["code"] == "overloaded" and "2 running, 1 waiting" in error["message"]

        admitted = [*running, *(c for c in extra if c not in refused)]
        for chat in admitted:
            chat.join(300)
            events = parse_sse_lines(chat.lines)
            assert isinstance(events[0], Metadata) and isinstance(events[-1], Done), chat.lines[-5:]
