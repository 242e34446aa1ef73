"""The SSE ``/chat`` app of an agent (``POST /chat``, the thread API, ``GET /health``)."""

from agent_runtime.chat.app import ChatAgentArgs, chat_app_builder, create_chat_app

__all__ = ["ChatAgentArgs", "chat_app_builder", "create_chat_app"]
