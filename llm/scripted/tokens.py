"""A deterministic stand-in tokenizer for usage accounting: words and punctuation marks are tokens.

Counts are stable across runs and machines (tests can assert them) and in the same ballpark as a real
BPE tokenizer for English, which is all ``usage`` needs to be for an offline model.
"""

import json
import re

from llm.scripted.protocol import ChatCompletionRequest

_TOKEN = re.compile(r"\w+|[^\w\s]")
MESSAGE_OVERHEAD = 3  # role and separators, as chat templates add per message
REPLY_PRIMER = 3  # the assistant header every reply starts with


def count_tokens(text: str) -> int:
    """Tokens in ``text``: its words and its punctuation marks."""
    return len(_TOKEN.findall(text))


def split_tokens(text: str) -> list[str]:
    """``text`` in stream-sized pieces; joining them gives ``text`` back exactly.

    A piece is a word with the spaces around it, or a punctuation mark.
    """
    return re.findall(r"\s*(?:\w+|[^\w\s])\s*", text) or ([text] if text else [])


def prompt_tokens(request: ChatCompletionRequest) -> int:
    """The prompt's tokens: each message with its overhead and tool calls, and the offered tools' schemas."""
    total = REPLY_PRIMER
    for message in request.messages:
        total += MESSAGE_OVERHEAD + count_tokens(message.role) + count_tokens(message.text())
        for call in message.tool_calls or []:
            total += count_tokens(call.function.name) + count_tokens(call.function.arguments)
    for tool in request.tools or []:
        total += count_tokens(json.dumps(tool.function.model_dump(exclude_none=True)))
    return total
