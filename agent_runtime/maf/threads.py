"""A stored Microsoft Agent Framework session as the thread API shows it (``GET /threads/{thread_id}``).

The session document is ``AgentSession.to_dict()``; its history is what MAF's ``InMemoryHistoryProvider``
keeps in ``state["in_memory"]["messages"]``: messages with a ``role`` and typed ``contents`` (``text``,
``function_call``, ``function_result``). They are read as plain JSON, so reading a thread needs neither
MAF, the model nor the tools.
"""

import json
from datetime import UTC, datetime
from typing import Any

from agent_runtime.state.sessions import StoredSession
from protocols.threads import ThreadMessage, ThreadToolCall, ThreadView

HISTORY_SOURCE = "in_memory"
"""The ``source_id`` of MAF's default history provider: where its messages sit in the session state."""


def history(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The serialized messages of a session document (none when it has no history)."""
    state = document.get("state") or {}
    messages = (state.get(HISTORY_SOURCE) or {}).get("messages") or []
    return [m for m in messages if isinstance(m, dict)]


def _args(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, json.JSONDecodeError):
        return {"arguments": raw}
    return value if isinstance(value, dict) else {"arguments": value}


def _result(content: dict[str, Any]) -> str:
    result = content.get("result")
    if result is None and content.get("exception"):
        return f"Error: {content['exception']}"
    return result if isinstance(result, str) else json.dumps(result, default=str, ensure_ascii=False)


def thread_messages(messages: list[dict[str, Any]]) -> list[ThreadMessage]:
    """MAF messages as thread messages: one per user or assistant message, one per tool result."""
    views: list[ThreadMessage] = []
    names: dict[str, str] = {}  # call id -> tool name, for the results
    for message in messages:
        role, contents = message.get("role"), message.get("contents") or []
        text = "".join(c.get("text") or "" for c in contents if c.get("type") == "text")
        if role == "user":
            views.append(ThreadMessage(role="user", content=text))
        elif role == "assistant":
            calls = [
                ThreadToolCall(
                    id=c.get("call_id") or "", name=c.get("name") or "", args=_args(c.get("arguments"))
                )
                for c in contents
                if c.get("type") == "function_call"
            ]
            names.update((call.id, call.name) for call in calls)
            views.append(ThreadMessage(role="assistant", content=text, tool_calls=calls))
        elif role == "tool":
            for c in contents:
                if c.get("type") == "function_result":
                    call_id = c.get("call_id") or ""
                    views.append(
                        ThreadMessage(
                            role="tool",
                            content=_result(c),
                            name=names.get(call_id, ""),
                            tool_call_id=call_id,
                            status="error" if c.get("exception") else "ok",
                        )
                    )
    return views


def thread_view(thread_id: str, stored: StoredSession) -> ThreadView:
    """The thread API's view of a stored session."""
    return ThreadView(
        thread_id=thread_id,
        messages=thread_messages(history(stored.document)),
        updated_at=datetime.fromtimestamp(stored.updated_at, tz=UTC),
    )
