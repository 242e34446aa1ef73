"""The packing agent (Microsoft Agent Framework) in the offline multi stack on a real Ray Serve instance.

Needs the ``/packing-agent`` (``agents.packing:build_app``) and ``/a2a-packing``
(``agents.packing:build_a2a_app``) apps in serve_multi_config.yaml.
"""

import json

import httpx
import pytest
from a2a.utils.constants import TransportProtocol

from protocols.a2a_client import a2a_execute_text
from protocols.events import Done, Error, ToolCall, ToolResult
from tests.support.stack import ServeStack, chat

pytestmark = pytest.mark.integration

REQUEST = "What should I pack for a trip to Seattle this week?"


def test_packing_chat_geocodes_then_forecasts_the_trip_city(offline_multi: ServeStack) -> None:
    response, events = chat(offline_multi, "/packing-agent", {"user_request": REQUEST})
    assert response.status_code == 200 and isinstance(events[-1], Done)
    assert not [e for e in events if isinstance(e, Error)]
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [c.name for c in calls[:2]] == ["geocode", "get_forecast"]
    assert "seattle" in json.dumps(calls[0].args).lower()
    assert abs(calls[1].args["latitude"] - 47.6) < 0.1 and abs(calls[1].args["longitude"] + 122.3) < 0.1
    assert all(e.status == "ok" for e in events if isinstance(e, ToolResult))
    assert "sample" in events[-1].answer.lower()

    thread_id = response.headers["x-thread-id"]
    view = httpx.get(f"{offline_multi.base_url}/packing-agent/threads/{thread_id}", timeout=30).json()
    assert [m["content"] for m in view["messages"] if m["role"] == "user"] == [REQUEST]


async def test_packing_a2a_face_answers_the_sdk_client(offline_multi: ServeStack) -> None:
    base = f"{offline_multi.base_url}/a2a-packing"
    for binding in (TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON):
        result = await a2a_execute_text(base, REQUEST, transports=(binding,))
        assert "Seattle" in result.text and "sample" in result.text.lower()


def test_packing_a2a_v03_message_send(offline_multi: ServeStack) -> None:
    base = f"{offline_multi.base_url}/a2a-packing"
    card = httpx.get(f"{base}/.well-known/agent-card.json", timeout=30).json()  # no header: the 0.3 card
    assert card["name"] == "packing" and card["skills"][0]["id"] == "packing_list"
    body = {
        "message": {"messageId": "m1", "role": "ROLE_USER", "content": [{"text": REQUEST}]},
        "configuration": {"blocking": True},
    }
    response = httpx.post(f"{base}/v1/message:send", json=body, timeout=180)
    assert response.status_code == 200, response.text
