"""Black box: `OFFLINE=1 make run` with a database, one chat turn, stop the stack, start it again, and the
thread API still returns that turn. Runs the real Makefile and `serve run` in their own Ray instance."""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from protocols.events import Done, Metadata, parse_sse_lines
from tests.support.stack import POSTGRES_URL, ROOT, postgres_reachable

pytestmark = pytest.mark.integration

PORT = int(os.environ.get("TEST_BLACKBOX_PORT", "18090"))
BASE = f"http://127.0.0.1:{PORT}"


class MakeRun:
    """`make run` in its own process group; ``stop()`` is Ctrl-C, then harder if it hangs."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            ["make", "run"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 420) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"make run exited with {self.process.returncode}"
            try:
                if httpx.get(f"{BASE}/weather-agent/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(2)
        raise TimeoutError(f"the stack did not become ready in {timeout_s:.0f}s")

    def stop(self) -> None:
        for sig, wait_s in ((signal.SIGINT, 60), (signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            if self.process.poll() is not None:
                break
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        self.log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the proxy port must be free before the next start
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
                time.sleep(1)
            except OSError:
                return


@pytest.fixture(params=["sqlite", "postgresql"])
def stack_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PYTEST"))}
    env.update(OFFLINE="1", PORT=str(PORT), RAY_ADDRESS="local", DATA_DIR=str(tmp_path / "data"))
    if request.param == "postgresql":
        if not postgres_reachable():
            pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 on this machine")
        env["DATABASE_URL"] = POSTGRES_URL
    else:
        env.pop("DATABASE_URL", None)
    yield env


def test_a_conversation_survives_a_full_stack_restart(stack_env: dict[str, str], tmp_path: Path) -> None:
    log = ROOT / "test-artifacts" / f"blackbox-{'pg' if 'DATABASE_URL' in stack_env else 'sqlite'}.log"
    log.parent.mkdir(exist_ok=True)
    log.unlink(missing_ok=True)
    first = MakeRun(stack_env, log)
    try:
        first.wait_ready()
        with httpx.stream(
            "POST",
            f"{BASE}/weather-agent/chat",
            json={"user_request": "What is the weather in Chicago?"},
            timeout=120,
        ) as response:
            events = parse_sse_lines(list(response.iter_lines()))
        assert isinstance(events[0], Metadata) and isinstance(events[-1], Done)
        thread_id, answer = events[0].thread_id, events[-1].answer
    finally:
        first.stop()

    second = MakeRun(stack_env, log)
    try:
        second.wait_ready()
        response = httpx.get(f"{BASE}/weather-agent/threads/{thread_id}", timeout=30)
        assert response.status_code == 200, response.text
        messages = response.json()["messages"]
        assert messages[0]["role"] == "user" and "Chicago" in messages[0]["content"]
        assert any(m["role"] == "tool" for m in messages), "tool calls are part of the stored conversation"
        assert messages[-1]["role"] == "assistant" and messages[-1]["content"] == answer
    finally:
        second.stop()
