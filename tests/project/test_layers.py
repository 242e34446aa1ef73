"""The package layers of docs/architecture.md: higher layers import lower ones, never the reverse."""

import ast
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT
FLOORS = {
    "platform_core": 1,
    "protocols": 2,
    "identity": 2,
    "agent_runtime": 3,
    "llm": 3,
    "mcp_servers": 3,
    "agents": 4,
    "ui": 4,
    "bench": 4,
    "sample_upstream": 4,
}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & FLOORS.keys()


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_package_imports_only_lower_floors(package: str) -> None:
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for other in _imported_packages(path) - {package}:
            if FLOORS[other] >= FLOORS[package]:
                wrong.append(f"{path.relative_to(ROOT)} imports {other}")
    assert not wrong, wrong


def test_every_top_level_package_has_a_floor() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name != "tests"}
    assert packages == set(FLOORS)


def test_no_test_module_imports_another() -> None:
    """Shared test code lives in tests/support/ (or tests/apps/, conftest.py), never in a test module."""
    wrong = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tests."):
                if node.module.split(".")[1] not in ("support", "apps"):
                    wrong.append(f"{path.relative_to(ROOT)} imports {node.module}")
    assert not wrong, wrong


def test_tests_mirror_the_package_tree() -> None:
    """Every test module sits under a folder named after what it tests (or project/, integration/)."""
    allowed = set(FLOORS) | {"project", "integration"}
    stray = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("test_*.py")
        if path.relative_to(ROOT / "tests").parts[0] not in allowed
    ]
    assert not stray, stray


def test_support_modules_hold_no_tests() -> None:
    """pytest collects only ``test_*.py``: a test function in tests/support/ would silently never run."""
    hidden = [
        f"{path.relative_to(ROOT)}:{node.name}"
        for path in sorted((ROOT / "tests" / "support").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
    ]
    assert not hidden, hidden
