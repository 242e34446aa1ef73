"""Read and delete one agent's stored conversations (``GET`` / ``DELETE /threads/{thread_id}``).

A thread is what LangGraph's checkpointer holds for it: the latest checkpoint's ``messages``, shown as
chat messages (user, assistant with its tool calls, tool results). Reading needs no model and no tools,
only the checkpointer, so it works while the agent's dependencies are down. The wire models are
:mod:`protocols.threads` (shared with the clients); this module only converts LangChain messages to them.
"""

from datetime import datetime

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver

from protocols.threads import ThreadMessage, ThreadToolCall, ThreadView

__all__ = ["ThreadMessage", "ThreadToolCall", "ThreadView", "read_thread", "thread_message"]


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


async def read_thread(saver: BaseCheckpointSaver[str], key: str, thread_id: str) -> ThreadView | None:
    """The conversation stored under ``key``, or ``None`` when there is none."""
    stored = await saver.aget_tuple({"configurable": {"thread_id": key, "checkpoint_ns": ""}})
    if stored is None:
        return None
    checkpoint = stored.checkpoint
    messages = checkpoint.get("channel_values", {}).get("messages") or []
    views = [view for message in messages if (view := thread_message(message)) is not None]
    updated_at = datetime.fromisoformat(checkpoint["ts"]) if checkpoint.get("ts") else None
    return ThreadView(thread_id=thread_id, messages=views, updated_at=updated_at)
