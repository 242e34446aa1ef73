"""What the ``/openai`` app reads: an OpenAI Chat Completions request, and the conversation in it.

Only what an agent can honour is read. ``model`` names the agent; ``messages`` is the conversation, whose
last message must be the user's (the request the agent answers) and whose earlier ``user``, ``assistant``
and ``system``/``developer`` messages become the run's :class:`~protocols.events.PriorTurn` history.
Sampling options (``temperature``, ``max_tokens``, ...) and client-side ``tools`` are accepted and ignored:
the agent runs with its own model settings and its own tools. ``tool`` messages and assistant tool calls of
the client's own tools are left out of the history (the agent never saw those tools).
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from platform_core.openai_errors import OpenAIError
from protocols.events import MAX_PRIOR_TURNS, PriorTurn

InputRole = Literal["system", "developer", "user", "assistant", "tool", "function"]


class InputMessage(BaseModel):
    """One message of the request; ``content`` is text or a list of content parts."""

    model_config = ConfigDict(extra="ignore")

    role: InputRole
    content: str | list[dict[str, Any]] | None = None

    def text(self, index: int) -> str:
        """The message as text: its string, or its text parts joined; 400 for any other part."""
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        texts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise OpenAIError(
                    400,
                    f"Only text content is supported; messages[{index}] has a {part.get('type')!r} part.",
                    param=f"messages.{index}.content",
                    code="unsupported_content",
                )
            texts.append(part["text"])
        return "\n".join(texts)


class StreamOptions(BaseModel):
    """``stream_options``: a last chunk with the run's token usage when ``include_usage``."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class CompletionRequest(BaseModel):
    """The fields of ``POST /v1/chat/completions`` the app reads (any other field is ignored)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    messages: list[InputMessage] = Field(min_length=1, max_length=MAX_PRIOR_TURNS + 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Literal[1] = 1

    @property
    def include_usage(self) -> bool:
        """Whether a streamed answer ends with a usage chunk."""
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


_HISTORY_ROLE: dict[str, Literal["user", "assistant", "system"]] = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",
}


def conversation(messages: list[InputMessage]) -> tuple[str, list[PriorTurn]]:
    """The user request (the last message, the user's) and the turns before it, as history."""
    last = len(messages) - 1
    if messages[last].role != "user":
        raise OpenAIError(
            400,
            f"The last message must be the user's (the one the agent answers), not {messages[last].role!r}.",
            param=f"messages.{last}.role",
            code="invalid_value",
        )
    user_request = messages[last].text(last)
    if not user_request.strip():
        raise OpenAIError(400, "The last user message is empty.", param=f"messages.{last}.content")
    history = []
    for index, message in enumerate(messages[:last]):
        role = _HISTORY_ROLE.get(message.role)
        text = message.text(index) if role else ""
        if role and text.strip():  # tool results and tool-call-only turns of the client's own tools
            history.append(PriorTurn(role=role, content=text))
    return user_request, history
