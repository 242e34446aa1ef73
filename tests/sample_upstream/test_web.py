"""The sample upstream server's web routes (offline mode): Brave-shaped search, pages, redirects."""

from collections.abc import Iterator

import httpx
import pytest

from sample_upstream.app import create_app
from tests.support.servers import serve_in_thread

# -- the sample upstream's web routes -----------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_url() -> Iterator[str]:
    with serve_in_thread(create_app()) as url:
        yield url


async def test_sample_brave_answers_in_brave_shape_with_absolute_urls(sample_url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{sample_url}/brave/res/v1/web/search", params={"q": "Kyoto travel", "count": 2}
        )
    assert response.status_code == 200
    assert response.headers["x-data-notice"].startswith("SAMPLE DATA")
    results = response.json()["web"]["results"]
    assert len(results) == 2
    assert results[0]["url"] == f"{sample_url}/pages/kyoto.html"
    assert "<strong>Kyoto</strong>" in results[0]["description"]
    assert all("SAMPLE DATA" in result["title"] for result in results)


async def test_sample_brave_validates_like_brave(sample_url: str) -> None:
    async with httpx.AsyncClient() as client:
        empty = await client.get(f"{sample_url}/brave/res/v1/web/search", params={"q": " "})
        too_many = await client.get(f"{sample_url}/brave/res/v1/web/search", params={"q": "x", "count": 21})
        nothing = await client.get(f"{sample_url}/brave/res/v1/web/search", params={"q": "zzzz qqqq"})
    assert empty.status_code == too_many.status_code == 422
    assert empty.json()["error"]["code"] == "VALIDATION"
    assert nothing.status_code == 200 and "web" not in nothing.json()


async def test_sample_pages_redirect_binary_and_no_traversal(sample_url: str) -> None:
    async with httpx.AsyncClient() as client:
        moved = await client.get(f"{sample_url}/pages/old-lisbon-guide.html")
        image = await client.get(f"{sample_url}/pages/lisbon-map.png")
        escape = await client.get(f"{sample_url}/pages/%2E%2E/search_results.json")
        robots = await client.get(f"{sample_url}/robots.txt")
    assert moved.status_code == 301 and moved.headers["location"] == "lisbon.html"
    assert image.headers["content-type"] == "image/png" and image.content.startswith(b"\x89PNG")
    assert escape.status_code == 404
    assert "Disallow: /pages/private/" in robots.text


async def test_latency_delays_every_answer_but_the_health_probe() -> None:
    with serve_in_thread(create_app(latency_ms=400)) as url:
        async with httpx.AsyncClient() as client:
            search = await client.get(f"{url}/brave/res/v1/web/search", params={"q": "Kyoto travel"})
    assert search.status_code == 200 and search.elapsed.total_seconds() >= 0.4
    with serve_in_thread(create_app(latency_ms=600_000)) as url:  # ten minutes: only health can answer
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{url}/health", timeout=60)).json()["ready"] is True
