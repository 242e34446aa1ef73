"""Shared fixtures. Integration fixtures start one real Ray Serve instance per test session.

Under ``CI=true`` a skipped test fails (see :func:`pytest_runtest_makereport`): CI must provide every
component a test needs (Chromium, PostgreSQL, Playwright, any package), so it cannot pass green while
the browser or PostgreSQL tests never ran. Tests deselected by marker (``-m "not integration"``) are not
skips and stay deselected; expected failures (``xfail``) are not skips either.
"""

import os
from collections.abc import Generator, Iterator

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from tests.support.fuzz import HYPOTHESIS_HOME
from tests.support.stack import ServeStack

# Hypothesis' files (its example database, the constants it collects) under .pytest_cache, not the repo root.
set_hypothesis_home_dir(HYPOTHESIS_HOME)

SKIPS_FAIL_ENV = "CI"


def skips_fail() -> bool:
    """Whether a skip counts as a failure in this run (CI=true, as CI services and ``.ci/run`` set)."""
    return os.environ.get(SKIPS_FAIL_ENV) == "true"


def _skip_reason(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _as_failure(reason: str) -> str:
    return (
        f"CI=true: this test would have been skipped ({reason}), and CI may skip nothing: "
        "provide the missing component"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Under CI=true, a skip (``pytest.skip``, ``skipif``, ``importorskip``, in setup or body) fails."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and skips_fail():
        report.outcome = "failed"
        report.longrepr = _as_failure(_skip_reason(report.longrepr))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """The same for a whole module skipped while it is imported (a module-level ``importorskip``)."""
    report = yield
    if report.skipped and skips_fail():
        report.outcome = "failed"
        report.longrepr = _as_failure(_skip_reason(report.longrepr))
    return report


# Modules on the session's Serve instance, in the order that redeploys least (any other comes after them):
# the auth stack first (it restarts every app with AUTH=on, then removes them), then every module on the
# offline multi stack back to back, the browser tests before the roll-out test changes that stack.
STACK_MODULE_ORDER = (
    "test_tracing",
    "test_auth",
    "test_multi",
    "test_openai",
    "test_packing",
    "test_browser",
    "test_faults",
    "test_soak",
    "test_autoscaling",
    "test_rollout",
)


def _run_order(item: pytest.Item) -> int:
    if item.get_closest_marker("integration") is None:
        return 0
    if "serve_stack" not in item.fixturenames:
        return 1  # a Ray instance of its own (make run, make up): before the session's one starts
    module = item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
    position = STACK_MODULE_ORDER.index(module) if module in STACK_MODULE_ORDER else len(STACK_MODULE_ORDER)
    return 2 + position


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Unit tests first, then the real-stack ones: the session's Ray cluster starts only when needed and
    stays up to the end, and unit tests that must run without a cluster never see one. Real-stack tests
    that start a Ray instance of their own go before the session's (two on 2 cores slow both), and the
    modules on the session's instance go in :data:`STACK_MODULE_ORDER` (the sort is stable: file order
    otherwise)."""
    items.sort(key=_run_order)


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
    for agent in ("weather", "research", "packing", "travel"):
        serve_stack.wait_ready(f"/{agent}-agent")
        serve_stack.wait_ready(f"/a2a-{agent}")
    return serve_stack
