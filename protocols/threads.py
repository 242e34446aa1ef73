"""The thread API's wire models: ``GET {agent}/threads/{thread_id}`` answers a :class:`ThreadView`.

Defined once, here, for both sides: the chat app builds these from its checkpointer
(:mod:`agent_runtime.state.threads` converts LangChain messages) and dumps them with
``exclude_none=True``; clients (:mod:`protocols.chat_client`, the UI) validate the body into them.

The platform's agents send ``user``, ``assistant`` and ``tool`` messages with text content and
``{id, name, args}`` tool calls. As readers the models also accept what other LangChain/OpenAI-style
thread APIs send (``system`` messages, content blocks, OpenAI ``function`` tool calls, any status word),
so a client can show a thread from an agent it did not build.
"""

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)


class ThreadToolCall(BaseModel):
    """A tool call the assistant made in a thread."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(
        default="", description="the call's id; the `tool` message answering it has it as `tool_call_id`"
    )
    name: str = Field(description="the tool's name")
    args: dict[str, Any] = Field(default_factory=dict, description="the arguments, as a JSON object")

    @model_validator(mode="before")
    @classmethod
    def _openai_shape(cls, raw: Any) -> Any:
        """OpenAI's ``{"id", "function": {"name", "arguments": "<json>"}}`` becomes ``{id, name, args}``."""
        if not isinstance(raw, dict) or not isinstance(raw.get("function"), dict):
            return raw
        function = raw["function"]
        arguments = function.get("arguments") or {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError:
                arguments = {"arguments": arguments}
        return {"id": raw.get("id") or "", "name": function.get("name", "?"), "args": arguments}


class ThreadMessage(BaseModel):
    """One message of a conversation.

    ``tool_calls`` are set on assistant messages; ``name``, ``tool_call_id`` and ``status`` on tool
    results.
    """

    model_config = ConfigDict(extra="ignore")

    role: Literal["user", "assistant", "tool", "system"] = Field(
        description="who said it (`system` only from other agents' thread APIs)"
    )
    content: str = Field(default="", description="the message's text")
    tool_calls: list[ThreadToolCall] = Field(
        default_factory=list, description="the tool calls of an assistant message (not sent on other roles)"
    )
    name: str | None = Field(default=None, description="the tool's name, on a tool result")
    tool_call_id: str | None = Field(default=None, description="the call a tool result answers")
    status: Literal["ok", "error"] | None = Field(default=None, description="a tool result's status")

    @field_validator("content", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str:
        """Content blocks (a list of ``{"type": "text", "text": ...}``) are joined to their text."""
        if value is None:
            return ""
        if isinstance(value, list):
            return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in value)
        return str(value)

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> str | None:
        """Any status word other than ``error`` (``success``, ``OK``, ...) reads as ``ok``."""
        if value is None:
            return None
        return "error" if str(value).lower() == "error" else "ok"

    @field_validator("tool_calls", mode="before")
    @classmethod
    def _calls(cls, value: Any) -> Any:
        """``null`` reads as no calls, so readers iterate ``tool_calls`` on any message without a check."""
        return [] if value is None else value

    @model_serializer(mode="wrap")
    def _wire(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """On the wire ``tool_calls`` belongs to assistant messages only (a list there, even empty)."""
        data: dict[str, Any] = handler(self)
        if self.role != "assistant" and not self.tool_calls:
            data.pop("tool_calls", None)
        return data


class ThreadView(BaseModel):
    """``GET /threads/{thread_id}`` body: a conversation as the agent remembers it."""

    model_config = ConfigDict(extra="ignore")

    thread_id: str = Field(description="the conversation's id")
    messages: list[ThreadMessage] = Field(default_factory=list, description="the messages, oldest first")
    updated_at: datetime | None = Field(default=None, description="when the conversation last changed")
