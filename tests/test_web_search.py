"""The web search MCP server through the official MCP client over streamable HTTP, against the sample
upstream served at a host root (so its robots.txt applies)."""

import contextlib
import functools
import json
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from mcp_servers.serving import create_mcp_asgi_app
from mcp_servers.web_brave import NOT_CONFIGURED, BraveSearch
from mcp_servers.web_search import WebSearchServerArgs, create_web_search_server
from platform_core.settings import get_settings
from sample_upstream.app import create_app
from tests.support.servers import call_tool, mcp_session, serve_in_thread, tool_text


async def names(host: str, port: int) -> list[str]:
    """DNS of this test world: one name pointing into a private network."""
    return {"guide.example": ["10.9.9.9"]}[host]


@contextlib.contextmanager
def web_search_server(env: dict[str, str | None], **args) -> Iterator[str]:
    """The web search MCP app (as each Serve replica builds it) on uvicorn; yields its MCP URL."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.delenv(key, raising=False) if value is None else patch.setenv(key, value)
        get_settings.cache_clear()
        server_args = WebSearchServerArgs(**args)
        app = create_mcp_asgi_app(
            functools.partial(create_web_search_server, server_args, resolver=names), server_args
        )
    get_settings.cache_clear()
    with serve_in_thread(app) as url:
        yield url + "/mcp"


@pytest.fixture(scope="module")
def sample() -> Iterator[str]:
    with serve_in_thread(create_app()) as url:
        yield url


@pytest.fixture(scope="module")
def mcp_url(sample: str) -> Iterator[str]:
    env = {"OFFLINE": "1", "BRAVE_API_KEY": None}
    with web_search_server(
        env, brave_base_url=f"{sample}/brave", trusted_hosts=[urlsplit(sample).netloc]
    ) as url:
        yield url


def body_of(text: str) -> str:
    """The page content of a fetch_url answer, without its heading and truncation note."""
    content = text.split(":\n\n", 1)[1]
    return re.sub(r"\n\n\[Content truncated: .*\]$", "", content, flags=re.DOTALL)


async def test_tools_and_their_arguments(mcp_url: str) -> None:
    async with mcp_session(mcp_url) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == {"brave_search", "fetch_url"}
    # Nothing a model could use to switch off robots.txt or the address checks.
    assert set(tools["fetch_url"].inputSchema["properties"]) == {"url", "max_length", "start_index", "raw"}
    assert tools["brave_search"].inputSchema["properties"]["count"]["maximum"] == 20


async def test_brave_search_offline_returns_sample_results(mcp_url: str, sample: str) -> None:
    result = await call_tool(mcp_url, "brave_search", {"query": "Lisbon travel guide", "count": 3})
    assert not result.isError, tool_text(result)
    answer = result.structuredContent
    assert answer["query"] == "Lisbon travel guide"
    assert len(answer["results"]) == 3
    first = answer["results"][0]
    assert first["url"] == f"{sample}/pages/lisbon.html"
    assert set(first) == {"title", "url", "description"}
    assert all("SAMPLE DATA" in item["title"] for item in answer["results"])
    assert "<strong>" not in first["description"] and "Lisbon" in first["description"]
    assert answer["notice"].startswith("SAMPLE DATA")
    assert json.loads(tool_text(result)) == answer


async def test_search_then_fetch_gives_markdown(mcp_url: str, sample: str) -> None:
    search = await call_tool(mcp_url, "brave_search", {"query": "Kyoto temples"})
    url = search.structuredContent["results"][0]["url"]
    result = await call_tool(mcp_url, "fetch_url", {"url": url})
    assert not result.isError, tool_text(result)
    text = tool_text(result)
    assert text.startswith(f"Contents of {sample}/pages/kyoto.html:")
    assert "# Kyoto Travel Guide" in text and "SAMPLE DATA" in text
    assert "**Fushimi Inari Taisha**" in text
    assert "<p>" not in text and "[Content truncated" not in text


async def test_markdown_links_are_absolute(mcp_url: str, sample: str) -> None:
    text = tool_text(await call_tool(mcp_url, "fetch_url", {"url": f"{sample}/pages/lisbon.html"}))
    assert f"[Seattle]({sample}/pages/seattle.html)" in text


async def test_raw_mode_returns_the_source(mcp_url: str, sample: str) -> None:
    text = tool_text(
        await call_tool(mcp_url, "fetch_url", {"url": f"{sample}/pages/lisbon.html", "raw": True})
    )
    assert "<h1>Lisbon Travel Guide</h1>" in text


async def test_long_page_is_paged(mcp_url: str, sample: str) -> None:
    url = f"{sample}/pages/long-guide.html"
    whole = body_of(tool_text(await call_tool(mcp_url, "fetch_url", {"url": url, "max_length": 100_000})))
    assert len(whole) > 20_000 and whole.rstrip().endswith("SAMPLE DATA — bundled offline sample page.")
    parts, start = [], 0
    async with mcp_session(mcp_url) as session:
        while True:
            text = tool_text(await session.call_tool("fetch_url", {"url": url, "start_index": start}))
            parts.append(body_of(text))
            note = re.search(
                r"characters (\d+)-(\d+) of (\d+) shown\. Call fetch_url again with start_index=(\d+)", text
            )
            if note is None:
                break
            assert (int(note[1]), int(note[2]), int(note[3])) == (start, start + 5000, len(whole))
            start = int(note[4])
    assert len(parts) == len(whole) // 5000 + 1
    assert all(len(part) == 5000 for part in parts[:-1])
    assert "".join(parts) == whole
    assert "Day 1 of 40" in parts[0] and "Day 40 of 40" not in parts[0] and "THE END" in parts[-1]


async def test_paging_past_the_end_and_bad_bounds(mcp_url: str, sample: str) -> None:
    url = f"{sample}/pages/seattle.html"
    past = await call_tool(mcp_url, "fetch_url", {"url": url, "start_index": 1_000_000})
    assert past.isError and "past the end of the content" in tool_text(past)
    zero = await call_tool(mcp_url, "fetch_url", {"url": url, "max_length": 0})
    assert zero.isError and "max_length must be between 1 and 100000" in tool_text(zero)


async def test_redirects_are_followed_and_reported(mcp_url: str, sample: str) -> None:
    result = await call_tool(mcp_url, "fetch_url", {"url": f"{sample}/pages/old-lisbon-guide.html"})
    text = tool_text(result)
    assert not result.isError, text
    assert text.startswith(
        f"Contents of {sample}/pages/lisbon.html (redirected from {sample}/pages/old-lisbon-guide.html):"
    )


async def test_binary_files_are_refused(mcp_url: str, sample: str) -> None:
    result = await call_tool(mcp_url, "fetch_url", {"url": f"{sample}/pages/lisbon-map.png"})
    assert result.isError
    assert "is image/png, not a text page" in tool_text(result)


async def test_robots_txt_disallow_is_honoured(mcp_url: str, sample: str) -> None:
    result = await call_tool(mcp_url, "fetch_url", {"url": f"{sample}/pages/private/members.html"})
    assert result.isError
    assert "robots.txt of" in tool_text(result) and "does not allow" in tool_text(result)
    assert "Secret itinerary" not in tool_text(result)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/", "private"),
        ("http://127.0.0.1:1/", "loopback"),  # the trusted sample server's host, another port
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://0x7f.1/", "127.0.0.1"),
        ("http://guide.example/", "resolves to 10.9.9.9"),
        ("file:///etc/passwd", "only http and https"),
    ],
)
async def test_fetch_url_refuses_internal_targets(mcp_url: str, url: str, why: str) -> None:
    result = await call_tool(mcp_url, "fetch_url", {"url": url})
    assert result.isError
    assert why in tool_text(result)


async def test_byte_cap_is_reported(sample: str) -> None:
    env = {"OFFLINE": "1"}
    with web_search_server(env, trusted_hosts=[urlsplit(sample).netloc], max_fetch_bytes=4096) as url:
        result = await call_tool(
            url, "fetch_url", {"url": f"{sample}/pages/long-guide.html", "max_length": 50_000}
        )
    text = tool_text(result)
    assert not result.isError, text
    assert "[Only the first 4096 bytes of this page were downloaded.]" in text
    assert "Day 1 of 40" in text and "Day 40 of 40" not in text


async def test_brave_search_without_key_says_how_to_configure() -> None:
    with web_search_server({"OFFLINE": None, "BRAVE_API_KEY": None}) as url:
        result = await call_tool(url, "brave_search", {"query": "Lisbon"})
    assert result.isError
    assert NOT_CONFIGURED in tool_text(result)


def brave_with(handler, api_key: str | None = "test-key") -> BraveSearch:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return BraveSearch("https://brave.test", api_key, client)


async def test_brave_client_sends_the_key_and_maps_auth_errors() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("x-subscription-token") != "good":
            return httpx.Response(401, json={"error": {"detail": "bad key"}})
        results = [{"title": "<strong>A</strong> &amp; B", "url": "https://a.example/", "description": "d"}]
        return httpx.Response(200, json={"web": {"results": results}})

    answer = await brave_with(handler, "good").search("  a   b ", 1)
    assert answer == {
        "query": "a b",
        "results": [{"title": "A & B", "url": "https://a.example/", "description": "d"}],
    }
    assert seen[0].url.path == "/res/v1/web/search" and seen[0].url.params["count"] == "1"
    with pytest.raises(Exception, match="refused the API key"):
        await brave_with(handler, "bad").search("a", 1)
    with pytest.raises(Exception, match="count must be between 1 and 20"):
        await brave_with(handler).search("a", 21)


def test_args_resolve_offline_and_online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFLINE", "1")
    monkeypatch.setenv("SERVE_BASE_URL", "http://127.0.0.1:18400")
    monkeypatch.delenv("BRAVE_API_KEY", raising=False)
    get_settings.cache_clear()
    try:
        args = WebSearchServerArgs(trusted_hosts=["intranet.corp"])
        assert args.resolved_brave() == ("http://127.0.0.1:18400/sample-upstream/brave", None, False)
        assert args.resolved_trusted_hosts() == ["intranet.corp", "127.0.0.1:18400/sample-upstream"]
        monkeypatch.setenv("OFFLINE", "0")
        monkeypatch.setenv("BRAVE_API_KEY", "from-env")
        get_settings.cache_clear()
        assert args.resolved_brave() == ("https://api.search.brave.com", "from-env", True)
        assert args.resolved_trusted_hosts() == ["intranet.corp"]
        assert WebSearchServerArgs(brave_api_key="from-args").resolved_brave()[1] == "from-args"
    finally:
        get_settings.cache_clear()
