"""Three figures of what the platform adds on a running stack: a hop, a token relay, a whole flow.

- :func:`hop_p50_ms`: one request through the Serve proxy to a trivial route (``GET /llm/health`` of the
  scripted model: no I/O behind it), one at a time on a kept-alive connection; beside it the proxy's own
  ``/-/healthz``, which no replica answers (what the proxy alone costs), and the same route on
  :mod:`bench.one_process` (no proxy, no replica process).
- :func:`token_relay`: the tokens of a long answer (the travel agent's itinerary) as a client of the
  agent's ``/chat`` receives them, against the same answer streamed straight from ``/llm``: the agent's
  final model request is rebuilt from the chat's own events (the question, its tool calls and their
  results), so the scripted model writes the same text both times. The rate is characters per second
  from the first to the last piece of the answer; the ratio of the two rates is ``token_relay_ratio``.
- :func:`flow_p50_s`: the median time to ``done`` of travel chats one at a time; on the Serve stack over
  the same on :mod:`bench.one_process` it is ``travel_ratio``.

Figures only: nothing here passes or fails.
"""

import json
import logging
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from bench.load import percentile
from protocols.chat_client import ChatClient
from protocols.events import Done, Error, Token, ToolCall, ToolResult

logger = logging.getLogger("bench.hops")

TRAVEL_TEXT = "Plan a 3-day trip to Lisbon next week."


async def _p50_ms(http: httpx.AsyncClient, url: str, requests: int) -> float:
    await http.get(url)  # the connection, once
    times: list[float] = []
    for _ in range(requests):
        start = time.perf_counter()
        response = await http.get(url)
        times.append(time.perf_counter() - start)
        response.raise_for_status()
    return round(statistics.median(times) * 1000, 2)


HOP_ROUTE = "/llm/health"
PROXY_ROUTE = "/-/healthz"  # the Serve proxy's own health: no replica answers it


async def hop_p50_ms(base_url: str, *, route: str = HOP_ROUTE, requests: int = 200) -> float:
    """p50 in milliseconds of ``GET route``, one request at a time on a kept-alive connection."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        return await _p50_ms(http, route, requests)


@dataclass
class StreamedAnswer:
    """One streamed answer: its text, and when its first and last pieces arrived."""

    text: str
    first_s: float
    last_s: float
    pieces: int

    @property
    def chars_per_s(self) -> float:
        """Characters per second between the first and the last piece."""
        span = self.last_s - self.first_s
        return len(self.text) / span if span > 0 else float("inf")


@dataclass
class ChatTrace:
    """What a chat streamed: the answer's timing, and the tool calls and results it showed."""

    answer: StreamedAnswer | None
    calls: list[ToolCall]
    results: list[ToolResult]
    done_s: float | None
    error: str | None


async def trace_chat(client: ChatClient, text: str) -> ChatTrace:
    """Run one chat on a new thread and keep its answer's timing, tool calls and results."""
    calls: list[ToolCall] = []
    results: list[ToolResult] = []
    pieces: list[str] = []
    first = last = 0.0
    done_s: float | None = None
    error: str | None = None
    start = time.perf_counter()
    async for event in client.stream(text, thread_id=f"bench-{uuid.uuid4().hex[:12]}"):
        now = time.perf_counter() - start
        if isinstance(event, Token):
            first = first or now
            last = now
            pieces.append(event.text)
        elif isinstance(event, ToolCall):
            calls.append(event)
            pieces.clear()  # text before a tool round is not the final answer
        elif isinstance(event, ToolResult):
            results.append(event)
        elif isinstance(event, Error):
            error = event.code
        elif isinstance(event, Done):
            done_s = now
    answer = StreamedAnswer("".join(pieces), first, last, len(pieces)) if pieces else None
    return ChatTrace(answer, calls, results, done_s, error)


def replay_request(text: str, trace: ChatTrace, model: str) -> dict[str, Any]:
    """The chat's final model request, rebuilt from its events: question, tool calls, their results."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": text}]
    if trace.calls:
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": json.dumps(call.args)},
                    }
                    for call in trace.calls
                ],
            }
        )
        messages += [{"role": "tool", "tool_call_id": r.id, "content": r.content} for r in trace.results]
    return {"model": model, "messages": messages, "stream": True}


async def stream_completion(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> StreamedAnswer:
    """Stream a chat completion and time its content pieces."""
    pieces: list[str] = []
    first = last = 0.0
    start = time.perf_counter()
    async with http.stream("POST", url, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            content = (choices[0].get("delta") or {}).get("content")
            if content:
                now = time.perf_counter() - start
                first = first or now
                last = now
                pieces.append(content)
    return StreamedAnswer("".join(pieces), first, last, len(pieces))


async def token_relay(base_url: str, *, route: str = "/travel-agent", runs: int = 5) -> dict[str, Any]:
    """``token_relay_ratio``: the answer's rate through ``route``'s /chat over its rate from /llm."""
    chat_rates: list[float] = []
    llm_rates: list[float] = []
    sizes: list[tuple[int, int, int, int]] = []
    timeout = httpx.Timeout(300, connect=30)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as http:
        model = (await http.get("/llm/v1/models")).json()["data"][0]["id"]
        client = ChatClient(f"{base_url.rstrip('/')}{route}", http=http, stream_timeout=timeout)
        await trace_chat(client, TRAVEL_TEXT)  # warm-up
        for _ in range(runs):
            trace = await trace_chat(client, TRAVEL_TEXT)
            if trace.answer is None or trace.error:
                logger.warning("relay chat gave no answer (%s)", trace.error)
                continue
            direct = await stream_completion(
                http, "/llm/v1/chat/completions", replay_request(TRAVEL_TEXT, trace, model)
            )
            if direct.text != trace.answer.text:
                logger.warning("the replayed request gave another answer: the rates compare unlike texts")
            chat_rates.append(trace.answer.chars_per_s)
            llm_rates.append(direct.chars_per_s)
            sizes.append((len(trace.answer.text), trace.answer.pieces, len(direct.text), direct.pieces))
    if not chat_rates:
        return {"token_relay_ratio": None}
    chat_rate, llm_rate = statistics.median(chat_rates), statistics.median(llm_rates)
    chars, chat_pieces, _, llm_pieces = sizes[-1]
    # What the agent adds per piece the model streamed: its stream's span less the model's, per piece.
    added_ms = (chars / chat_rate - chars / llm_rate) * 1000 / max(llm_pieces, 1)
    return {
        "token_relay_ratio": round(chat_rate / llm_rate, 3),
        "relay": {
            "chat_chars_per_s": round(chat_rate),
            "llm_chars_per_s": round(llm_rate),
            "answer_chars": chars,
            "chat_pieces": chat_pieces,
            "llm_pieces": llm_pieces,
            "agent_ms_per_model_piece": round(added_ms, 3),
        },
    }


async def flow_p50_s(base_url: str, *, route: str = "/travel-agent", runs: int = 10) -> dict[str, Any]:
    """Median and p90 time to ``done`` of ``runs`` travel chats one at a time (after one warm-up)."""
    timeout = httpx.Timeout(300, connect=30)
    done: list[float] = []
    errors = 0
    async with httpx.AsyncClient(timeout=timeout) as http:
        client = ChatClient(f"{base_url.rstrip('/')}{route}", http=http, stream_timeout=timeout)
        await trace_chat(client, TRAVEL_TEXT)
        for _ in range(runs):
            trace = await trace_chat(client, TRAVEL_TEXT)
            if trace.error or trace.done_s is None:
                errors += 1
            else:
                done.append(trace.done_s)
    return {
        "done_p50_s": round(statistics.median(done), 3) if done else None,
        "done_p90_s": round(p90, 3) if (p90 := percentile(done, 0.9)) is not None else None,
        "runs": runs,
        "errors": errors,
    }
