"""The scripted model's view of a conversation: the latest request and what tools did since.

A "turn" starts at the latest user message. Tool calls and results after it are the turn's work so far:
the policy fills arguments from those results and never repeats a call made in the turn. Results of
earlier turns are not used for arguments, so "weather in Paris" after "weather in Seattle" geocodes
Paris instead of reusing Seattle's coordinates.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from llm.scripted.protocol import Message, parse_arguments


@dataclass
class ToolResult:
    """One tool call of the current turn and, once the client sent it, its result."""

    call_id: str
    name: str
    args: dict[str, Any]
    content: str | None = None

    @property
    def answered(self) -> bool:
        """Whether the client has sent the call's result."""
        return self.content is not None

    @property
    def data(self) -> Any:
        """The result parsed as JSON (also inside MCP/LangChain content-part lists), else None."""
        return parse_json_content(self.content or "")

    @property
    def ok(self) -> bool:
        """False when the result reports an error (``Error: ...`` text or an ``error`` JSON field)."""
        text = (self.content or "").strip()
        if text.lower().startswith(("error", "tool error", "failed")):
            return False
        data = self.data
        if isinstance(data, dict) and (data.get("isError") is True or data.get("error")):
            return False
        return True


@dataclass
class Conversation:
    """The latest user request, the earlier ones (newest first) and the current turn's tool calls."""

    request: str
    earlier_requests: list[str] = field(default_factory=list)
    calls: list[ToolResult] = field(default_factory=list)
    rounds: int = 0  # assistant tool-call messages in the current turn

    @property
    def results(self) -> list[ToolResult]:
        """The turn's calls whose results the client has sent."""
        return [call for call in self.calls if call.answered]

    def was_called(self, name: str, args: dict[str, Any]) -> bool:
        """Whether the turn already made this exact call (the same tool with the same arguments)."""
        key = call_key(name, args)
        return any(call_key(call.name, call.args) == key for call in self.calls)

    def call_ok(self, name: str, args: dict[str, Any]) -> bool:
        """Whether this exact call was made in the turn and succeeded (pending calls count as ok)."""
        key = call_key(name, args)
        return any(call_key(c.name, c.args) == key and (c.ok or not c.answered) for c in self.calls)


def call_key(name: str, args: dict[str, Any]) -> str:
    """A key that two calls share exactly when they call the same tool with the same arguments."""
    return name + json.dumps(args, sort_keys=True, default=str)


def parse_json_content(text: str) -> Any:
    """The JSON in a tool message, or None.

    A plain JSON document, or a list of ``{"type": "text", "text": ...}`` parts (how LangChain
    serializes MCP results) whose texts are JSON.
    """
    text = text.strip()
    if not text or text[0] not in "[{":
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return _json_documents(text)
    if (
        isinstance(value, list)
        and value
        and all(isinstance(p, dict) and p.get("type") == "text" for p in value)
    ):
        parsed = [parse_json_content(str(p.get("text", ""))) for p in value]
        parsed = [p for p in parsed if p is not None]
        return parsed[0] if len(parsed) == 1 else (parsed or None)
    return value


def _json_documents(text: str) -> list[Any] | None:
    """Several JSON documents in a row (an MCP tool returning a list gives one text block per item)."""
    decoder, documents, position = json.JSONDecoder(), [], 0
    while position < len(text):
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return None
        documents.append(value)
        while position < len(text) and text[position].isspace():
            position += 1
    return documents or None


def _tool_message_text(message: Message) -> str:
    if isinstance(message.content, list) and all(isinstance(p, dict) for p in message.content):
        texts = [str(p.get("text", "")) for p in message.content if p.get("type") == "text"]
        return "\n".join(texts)
    return message.text()


def read_conversation(messages: list[Message]) -> Conversation:
    """Split ``messages`` into the latest user request, earlier requests and the current turn's calls."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    earlier = [m.text() for m in messages[: max(last_user, 0)] if m.role == "user"]
    conversation = Conversation(
        request=messages[last_user].text() if last_user >= 0 else "",
        earlier_requests=list(reversed(earlier)),
    )
    by_id: dict[str, ToolResult] = {}
    for message in messages[last_user + 1 :]:
        if message.role == "assistant" and message.tool_calls:
            conversation.rounds += 1
            for call in message.tool_calls:
                result = ToolResult(call.id, call.function.name, parse_arguments(call.function.arguments))
                by_id[call.id] = result
                conversation.calls.append(result)
        elif message.role in ("tool", "function"):
            answered = by_id.get(message.tool_call_id or "")
            if answered is None:  # legacy function messages carry a name, no id
                answered = ToolResult(
                    message.tool_call_id or f"legacy-{len(by_id)}", message.name or "tool", {}
                )
                by_id[answered.call_id] = answered
                conversation.calls.append(answered)
            answered.content = _tool_message_text(message)
    return conversation
