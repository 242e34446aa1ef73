"""The subset of the OpenAI Chat Completions request the scripted model validates and understands.

Unknown request fields are accepted and ignored (clients send many optional knobs: temperature, seed,
user, ...), but the fields the model uses are validated like OpenAI does, so malformed requests get a
400 naming the field instead of a confusing answer.
"""

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class FunctionCall(BaseModel):
    """The function of a tool call in an assistant message: its name and JSON-text arguments."""

    model_config = ConfigDict(extra="allow")

    name: str
    arguments: str = ""


class MessageToolCall(BaseModel):
    """A tool call of an assistant message, as a client sends the history back."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(BaseModel):
    """One chat message; its content is text or a list of content parts."""

    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's text; content parts other than text (images, audio) are skipped."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")


class FunctionDefinition(BaseModel):
    """A function the client offers as a tool; ``parameters`` must be an object schema."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("type", "object") != "object":
            raise ValueError("function parameters must be a JSON Schema of type 'object'")
        if value is not None and not isinstance(value.get("properties", {}), dict):
            raise ValueError("function parameters 'properties' must be an object")
        return value


class ToolDefinition(BaseModel):
    """A tool the client offers (OpenAI's only tool type is ``function``)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    function: FunctionDefinition


class NamedToolChoiceFunction(BaseModel):
    """The function a named ``tool_choice`` points at."""

    name: str


class NamedToolChoice(BaseModel):
    """A ``tool_choice`` that names the one function the model must call."""

    type: Literal["function"]
    function: NamedToolChoiceFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class StreamOptions(BaseModel):
    """Options of a streamed completion; ``include_usage`` adds a last chunk with ``usage``."""

    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``, validated like OpenAI does (see the module docstring)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model: str
    messages: list[Message] = Field(min_length=1)
    tools: list[ToolDefinition] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1)
    response_format: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check_tool_choice(self) -> "ChatCompletionRequest":
        names = [tool.function.name for tool in self.tools or []]
        if len(set(names)) != len(names):
            raise ValueError("tool function names must be unique")
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise ValueError(f"tool_choice names function {choice.function.name!r}, which is not in tools")
        if choice == "required" and not names:
            raise ValueError("tool_choice 'required' needs at least one tool")
        return self

    @property
    def completion_limit(self) -> int | None:
        """The completion's token limit: ``max_completion_tokens``, else the older ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def stop_sequences(self) -> list[str]:
        """``stop`` as a list of non-empty sequences."""
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop if s]


def parse_arguments(arguments: str) -> dict[str, Any]:
    """A tool call's JSON arguments; anything unparsable counts as no arguments."""
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
