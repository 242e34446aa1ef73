"""Read and delete one agent's stored conversations (``GET`` / ``DELETE /threads/{thread_id}``).

A thread is what LangGraph's checkpointer holds for it: the latest checkpoint's ``messages``, shown as
chat messages (user, assistant with its tool calls, tool results). Reading needs no model and no tools,
only the checkpointer, so it works while the agent's dependencies are down.
"""

from datetime import datetime
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from pydantic import BaseModel, Field


class ThreadToolCall(BaseModel):
    id: str
    name: str
    args: dict[str, Any]


class ThreadMessage(BaseModel):
    """One message of a conversation. ``tool_calls`` on assistant messages; ``name``,
    ``tool_call_id`` and ``status`` on tool results."""

    role: Literal["user", "assistant", "tool"]
    content: str
    tool_calls: list[ThreadToolCall] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    status: Literal["ok", "error"] | None = None


class ThreadView(BaseModel):
    """``GET /threads/{thread_id}`` body."""

    thread_id: str
    messages: list[ThreadMessage] = Field(default_factory=list)
    updated_at: datetime | None = None


def thread_message(message: BaseMessage) -> ThreadMessage | None:
    """The API view of a stored message (``None`` for kinds a client does not see, e.g. system)."""
    if isinstance(message, HumanMessage):
        return ThreadMessage(role="user", content=message.text)
    if isinstance(message, AIMessage):
        calls = [
            ThreadToolCall(id=call["id"] or "", name=call["name"], args=call["args"])
            for call in message.tool_calls
        ]
        return ThreadMessage(role="assistant", content=message.text, tool_calls=calls)
    if isinstance(message, ToolMessage):
        return ThreadMessage(
            role="tool",
            content=message.text,
            name=message.name or "",
            tool_call_id=message.tool_call_id,
            status="error" if message.status == "error" else "ok",
        )
    return None


async def read_thread(saver: BaseCheckpointSaver, key: str, thread_id: str) -> ThreadView | None:
    """The conversation stored under ``key``, or ``None`` when there is none."""
    stored = await saver.aget_tuple({"configurable": {"thread_id": key, "checkpoint_ns": ""}})
    if stored is None:
        return None
    checkpoint = stored.checkpoint
    messages = checkpoint.get("channel_values", {}).get("messages") or []
    views = [view for message in messages if (view := thread_message(message)) is not None]
    updated_at = datetime.fromisoformat(checkpoint["ts"]) if checkpoint.get("ts") else None
    return ThreadView(thread_id=thread_id, messages=views, updated_at=updated_at)
