"""An agent's MCP tool call against the same call on an open MCP session, on a running stack.

The agent's call is timed from outside, as a client sees it: its ``tool_call`` event to its
``tool_result`` (chats one at a time). The same tool with the same arguments is then called through the
proxy on one open session of the official MCP client. ``mcp_call_ratio`` is the agent's median over the
open session's median, summed over the tools the chat used: 1.0 means the agent adds nothing, a session
handshake per call shows as 2-3.

    .venv/bin/python -m bench.mcp_ratio --base-url http://127.0.0.1:8000
"""

import argparse
import asyncio
import json
import logging
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from bench.load import DEFAULT_TEXT, ChatMarks, http_pool, one_chat
from protocols.chat_client import ChatClient

logger = logging.getLogger("bench.mcp_ratio")


@dataclass
class ToolTiming:
    """One tool's median call time in the agent and on an open session."""

    name: str
    agent_p50_s: float
    session_p50_s: float


@dataclass
class RatioResult:
    """The figures of :func:`measure`."""

    mcp_call_ratio: float | None
    tools: list[ToolTiming]


async def agent_calls(base_url: str, route: str, text: str, chats: int) -> list[ChatMarks]:
    """``chats`` chats one at a time (after a warm-up), with their tool calls timed."""
    async with http_pool(1) as http:
        client = ChatClient(f"{base_url.rstrip('/')}{route}", http=http)
        await one_chat(client, text)
        return [await one_chat(client, text) for _ in range(chats)]


async def session_calls(url: str, name: str, args: dict[str, Any], calls: int) -> list[float]:
    """Seconds per call of ``name(args)`` on one open session (after a warm-up call)."""
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(30, read=120)) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        await session.list_tools()  # the output schemas the client validates results against
        await session.call_tool(name, args)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            await session.call_tool(name, args)
            times.append(time.perf_counter() - start)
    return times


async def measure(
    base_url: str,
    *,
    route: str = "/weather-agent",
    mcp_route: str = "/mcp-weather/mcp",
    text: str = DEFAULT_TEXT,
    chats: int = 10,
) -> RatioResult:
    """Time the agent's tool calls, then the same calls on an open session; see the module docstring."""
    marks = await agent_calls(base_url, route, text, chats)
    by_tool: dict[str, tuple[dict[str, Any], list[float]]] = {}
    for chat in marks:
        for name, args, seconds in chat.tool_calls:
            by_tool.setdefault(name, (args, []))[1].append(seconds)
    url = f"{base_url.rstrip('/')}{mcp_route}"
    tools = []
    for name, (args, agent_times) in sorted(by_tool.items()):
        direct = await session_calls(url, name, args, calls=max(10, len(agent_times)))
        tools.append(
            ToolTiming(name, round(statistics.median(agent_times), 4), round(statistics.median(direct), 4))
        )
    agent_total = sum(t.agent_p50_s for t in tools)
    session_total = sum(t.session_p50_s for t in tools)
    ratio = round(agent_total / session_total, 2) if tools and session_total > 0 else None
    return RatioResult(mcp_call_ratio=ratio, tools=tools)


def describe(result: RatioResult) -> str:
    """The figures, for people."""
    lines = [
        f"  {t.name}: agent {t.agent_p50_s * 1000:.1f} ms, open session {t.session_p50_s * 1000:.1f} ms"
        for t in result.tools
    ]
    return "\n".join([f"mcp_call_ratio: {result.mcp_call_ratio}", *lines])


def main() -> None:
    """Command line: ``python -m bench.mcp_ratio --help``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--route", default="/weather-agent")
    parser.add_argument("--mcp-route", default="/mcp-weather/mcp")
    parser.add_argument("--chats", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    result = asyncio.run(measure(args.base_url, route=args.route, mcp_route=args.mcp_route, chats=args.chats))
    print(describe(result))
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
