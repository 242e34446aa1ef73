"""Shared fixtures. Integration fixtures start one real Ray Serve instance per test session."""

from collections.abc import Iterator

import pytest

from tests.stack import ServeStack


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Unit tests first, then the real-stack ones: the session's Ray cluster starts only when needed and
    stays up to the end, and unit tests that must run without a cluster never see one."""
    items.sort(key=lambda item: item.get_closest_marker("integration") is not None)


@pytest.fixture(scope="session")
def serve_stack() -> Iterator[ServeStack]:
    stack = ServeStack()
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def offline_single(serve_stack: ServeStack) -> ServeStack:
    """serve_config.yaml in offline mode (scripted LLM, sample upstream), as ``OFFLINE=1 make run``."""
    config = serve_stack.local_config("serve_config.yaml", offline=True)
    for app in config["applications"]:
        if app["name"] == "mcp_weather":
            app["args"]["min_replicas"] = 2  # stateless MCP must work whichever replica answers
    serve_stack.deploy(config)
    serve_stack.wait_ready("/weather-agent")
    return serve_stack


@pytest.fixture(scope="session")
def offline_multi(serve_stack: ServeStack) -> ServeStack:
    """serve_multi_config.yaml in offline mode, as ``OFFLINE=1 make run-multi``."""
    serve_stack.deploy(serve_stack.local_config("serve_multi_config.yaml", offline=True))
    for route in ("/weather-agent", "/research-agent", "/travel-agent", "/a2a-weather", "/a2a-research"):
        serve_stack.wait_ready(route)
    return serve_stack
