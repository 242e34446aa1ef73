"""Under CI=true a skipped test fails, saying why it would have skipped; without CI it stays a skip.

The hooks live in tests/conftest.py; here they run in an inner pytest session (pytester) over small
test files that skip in every way the suite does: ``pytest.skip`` in a body or a fixture, a ``skipif``
marker, a module-level ``importorskip``.
"""

import pytest

pytest_plugins = ["pytester"]

CONFTEST = "from tests.conftest import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401\n"
INI = """[pytest]
asyncio_default_fixture_loop_scope = function
markers =
    integration: needs the real stack
"""

SKIPPING_TESTS = """
import pytest

def test_passes():
    pass

def test_skips_in_its_body():
    pytest.skip("no Chromium at /usr/bin/chromium")

@pytest.mark.skipif(True, reason="PostgreSQL is not reachable at 127.0.0.1:5432")
def test_skipif_marker():
    pass

@pytest.fixture
def browser():
    pytest.skip("playwright (dev dependency) not installed")

def test_skips_in_a_fixture(browser):
    pass

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_failure():
    assert False

@pytest.mark.integration
def test_deselected_by_marker():
    pytest.skip("never collected for this run")
"""

SKIPPED_MODULE = """
import pytest

pytest.importorskip("no_such_component_here", reason="the no_such_component_here package is missing")

def test_never_runs():
    pass
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    return pytester


def run(pytester: pytest.Pytester) -> pytest.RunResult:
    return pytester.runpytest("-m", "not integration", "-p", "no:cacheprovider", "-rA")


def test_under_ci_every_kind_of_skip_fails_with_its_reason(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner.makepyfile(test_skipping=SKIPPING_TESTS)
    monkeypatch.setenv("CI", "true")
    result = run(inner)
    # Skips in setup (marker, fixture) are reported as setup errors, the one in the body as a failure.
    result.assert_outcomes(passed=1, failed=1, errors=2, xfailed=1, deselected=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines_random(
        [
            "*CI=true: this test would have been skipped (no Chromium at /usr/bin/chromium)*",
            "*CI=true: this test would have been skipped (PostgreSQL is not reachable at 127.0.0.1:5432)*",
            "*CI=true: this test would have been skipped (playwright (dev dependency) not installed)*",
        ]
    )


@pytest.mark.parametrize("ci", [None, "false", "1"])
def test_outside_ci_skips_stay_skips(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    inner.makepyfile(test_skipping=SKIPPING_TESTS)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    result = run(inner)
    result.assert_outcomes(passed=1, skipped=3, xfailed=1, deselected=1)
    assert result.ret == pytest.ExitCode.OK


def test_under_ci_a_module_skipped_at_import_fails_the_collection(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner.makepyfile(test_module_skip=SKIPPED_MODULE)
    monkeypatch.setenv("CI", "true")
    result = run(inner)
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error stops the run before any test
    result.stdout.fnmatch_lines(
        ["*CI=true: this test would have been skipped (the no_such_component_here package is missing)*"]
    )

    monkeypatch.delenv("CI")
    result = run(inner)
    result.assert_outcomes(skipped=1)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED  # the skipped module was its only test
