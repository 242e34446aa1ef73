"""From a validated request to an OpenAI chat completion, whole or as ``chat.completion.chunk`` events.

The HTTP layer (:mod:`llm.scripted.server`) only parses and sends; the decision comes from
:mod:`llm.scripted.policy`. Tool-call ids are derived from the conversation, so the same request gives
the same response (apart from the completion id and timestamp).
"""

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from llm.scripted.conversation import read_conversation
from llm.scripted.policy import decide
from llm.scripted.protocol import ChatCompletionRequest, NamedToolChoice
from llm.scripted.tokens import count_tokens, prompt_tokens, split_tokens
from llm.scripted.tools import tool_spec

ARGUMENT_PIECE_CHARS = 8  # streamed tool-call arguments arrive in pieces this long, like real models


@dataclass
class Reply:
    """The model's answer to one request, before it becomes a completion body or stream chunks."""

    content: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "stop"
    usage: dict[str, int] = field(default_factory=dict)


def generate_reply(request: ChatCompletionRequest, model_name: str) -> Reply:
    """The scripted model's reply to ``request``: tool calls or text, with usage.

    Deterministic: the same request gives the same reply, tool-call ids included.
    """
    conversation = read_conversation(request.messages)
    tools = [tool_spec(t) for t in request.tools or []]
    choice = request.tool_choice
    decision = decide(
        conversation,
        tools,
        tool_choice=choice if isinstance(choice, str) else None,
        forced_tool=choice.function.name if isinstance(choice, NamedToolChoice) else None,
        parallel_tool_calls=request.parallel_tool_calls is not False,
        model_name=model_name,
    )
    prompt = prompt_tokens(request)
    if decision.calls:
        tool_calls: list[dict[str, Any]] = []
        for index, call in enumerate(decision.calls):
            arguments = json.dumps(call.args, ensure_ascii=False)
            seed = f"{len(request.messages)}:{index}:{call.name}:{arguments}"
            call_id = "call_" + hashlib.sha256(seed.encode()).hexdigest()[:24]
            tool_calls.append(
                {"id": call_id, "type": "function", "function": {"name": call.name, "arguments": arguments}}
            )
        completion = sum(
            count_tokens(c["function"]["name"]) + count_tokens(c["function"]["arguments"]) for c in tool_calls
        )
        return Reply(None, tool_calls, "tool_calls", _usage(prompt, completion))
    content, finish_reason = _limit(decision.answer or "", request)
    return Reply(content, [], finish_reason, _usage(prompt, count_tokens(content)))


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _limit(text: str, request: ChatCompletionRequest) -> tuple[str, str]:
    """Apply ``stop`` sequences and the token limit, like a real model's ``finish_reason``."""
    for stop in request.stop_sequences:
        if stop in text:
            text = text[: text.index(stop)]
    limit = request.completion_limit
    if limit is not None and count_tokens(text) > limit:
        pieces, kept = split_tokens(text), 0
        cut = []
        for piece in pieces:
            kept += count_tokens(piece)
            if kept > limit:
                break
            cut.append(piece)
        return "".join(cut).rstrip(), "length"
    return text, "stop"


def new_completion_id() -> str:
    """A fresh ``chatcmpl-...`` id, as OpenAI gives every completion."""
    return "chatcmpl-" + uuid.uuid4().hex


def completion_body(reply: Reply, model: str) -> dict[str, Any]:
    """The reply as a whole ``chat.completion`` body."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    return {
        "id": new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
        "usage": reply.usage,
    }


def completion_chunks(reply: Reply, model: str, include_usage: bool) -> Iterator[dict[str, Any]]:
    """The reply as ``chat.completion.chunk`` bodies, in the order OpenAI streams them.

    The role first; content pieces, or tool-call headers followed by argument pieces; the finish reason;
    and with ``include_usage`` a last chunk with ``usage`` and no choices.
    """
    base = {
        "id": new_completion_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        body = {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            body["usage"] = None
        return body

    yield chunk({"role": "assistant", "content": None if reply.tool_calls else ""})
    for index, call in enumerate(reply.tool_calls):
        function = call["function"]
        header = {"index": index, "id": call["id"], "type": "function"}
        yield chunk({"tool_calls": [{**header, "function": {"name": function["name"], "arguments": ""}}]})
        arguments = function["arguments"]
        for start in range(0, len(arguments), ARGUMENT_PIECE_CHARS):
            piece = arguments[start : start + ARGUMENT_PIECE_CHARS]
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    for piece in split_tokens(reply.content or ""):
        yield chunk({"content": piece})
    yield chunk({}, reply.finish_reason)
    if include_usage:
        yield {**base, "choices": [], "usage": reply.usage}
