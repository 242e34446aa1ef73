"""The package layers of docs/architecture.md: higher layers import lower ones, never the reverse."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {
    "platform_core": 1,
    "protocols": 2,
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
