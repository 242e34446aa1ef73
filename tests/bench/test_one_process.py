"""bench.one_process: every app of the offline multi config in one process, without Serve or Ray."""

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from bench.hops import TRAVEL_TEXT, replay_request, stream_completion, trace_chat
from bench.one_process import config_env
from bench.stack import one_process_stack
from protocols.chat_client import ChatClient


def test_apps_that_disagree_on_an_env_var_are_refused() -> None:
    config = {
        "applications": [
            {"name": "a", "runtime_env": {"env_vars": {"OFFLINE": "1", "X": "1"}}},
            {"name": "b", "runtime_env": {"env_vars": {"OFFLINE": "1"}}},
        ]
    }
    assert config_env(config) == {"OFFLINE": "1", "X": "1"}
    config["applications"][1]["runtime_env"]["env_vars"]["X"] = "2"
    with pytest.raises(ValueError, match="X"):
        config_env(config)


@pytest.fixture(scope="module")
def one_process_url() -> Iterator[str]:
    with one_process_stack(start_timeout_s=180) as stack:
        assert "/travel-agent" in stack.routes and "/ui" not in stack.routes
        yield stack.base_url


async def _travel(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as http:
        client = ChatClient(f"{base_url}/travel-agent", http=http)
        trace = await trace_chat(client, TRAVEL_TEXT)
        assert trace.error is None and trace.done_s is not None
        # The travel agent delegated to its three agents over A2A, inside the one process.
        assert {c.name for c in trace.calls} == {"a2a_weather", "a2a_research", "a2a_packing"}
        assert all(r.status == "ok" for r in trace.results), trace.results
        assert trace.answer is not None and "Lisbon" in trace.answer.text
        # Its final model request, rebuilt from the events, gives the scripted model's same answer.
        model = (await http.get("/llm/v1/models")).json()["data"][0]["id"]
        direct = await stream_completion(
            http, "/llm/v1/chat/completions", replay_request(TRAVEL_TEXT, trace, model)
        )
        assert direct.text == trace.answer.text


@pytest.mark.integration
def test_the_travel_flow_runs_in_one_process(one_process_url: str) -> None:
    asyncio.run(_travel(one_process_url))
