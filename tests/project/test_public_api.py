"""Every package's face: ``__all__`` is exactly its public names, and no module uses another's privates.

Like httpx's ``test_exported_members``: what a package's namespace holds without a leading underscore is
what it exports, so ``__all__`` (and ``from package import *``) cannot drift from the code. Names that
Python itself puts there are not the package's choice and are left out: submodules (set as attributes
once anything imports them) and ``from __future__`` features.
"""

import __future__

import ast
import importlib
import types
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT
TOP_LEVEL = sorted(init.parent.name for init in ROOT.glob("*/__init__.py") if init.parent.name != "tests")
PACKAGES = sorted(
    ".".join(init.parent.relative_to(ROOT).parts)
    for top in TOP_LEVEL
    for init in (ROOT / top).rglob("__init__.py")
)


def _public_names(package: types.ModuleType) -> list[str]:
    """The package's own public names: no ``_name``, no submodule, no ``__future__`` feature."""
    names = []
    for name, value in vars(package).items():
        if name.startswith("_"):
            continue
        if isinstance(value, types.ModuleType) and value.__name__ == f"{package.__name__}.{name}":
            continue
        if name in __future__.all_feature_names and value is getattr(__future__, name):
            continue
        names.append(name)
    return sorted(names)


def test_every_package_is_checked() -> None:
    expected = {
        "platform_core",
        "protocols",
        "identity",
        "llm",
        "llm.scripted",
        "mcp_servers",
        "agent_runtime",
        "agent_runtime.tools",
        "agent_runtime.chat",
        "agent_runtime.a2a",
        "agent_runtime.state",
        "agents",
        "ui",
        "bench",
        "sample_upstream",
    }
    assert expected <= set(PACKAGES)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_exactly_the_public_names(name: str) -> None:
    package = importlib.import_module(name)
    exported = getattr(package, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ lists a name twice"
    assert sorted(exported) == _public_names(package)


# --- no private names across packages ------------------------------------------------------------------


def _is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _is_module(dotted: str) -> bool:
    """Whether ``dotted`` names one of our modules or packages (by its file, without importing it)."""
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _module_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted module, for every name an import binds to one of our modules."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                if _is_module(f"{node.module}.{alias.name}"):
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return {name: module for name, module in aliases.items() if module.split(".")[0] in TOP_LEVEL}


def _dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; None when the chain does not start at a plain name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def _private_uses(path: Path) -> list[str]:
    """``from other import _x``, ``import other._mod`` and ``other._x`` of another of our packages."""
    own = path.relative_to(ROOT).parts[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(ROOT)
    found: list[str] = []

    def check(dotted: str, line: int) -> None:
        parts = dotted.split(".")
        if parts[0] not in TOP_LEVEL or parts[0] == own:
            return
        private = next((i for i, part in enumerate(parts) if i and _is_private(part)), None)
        if private is not None:  # named up to the private part, so ``a._b.c`` and ``a._b`` are one use
            found.append(f"{where}:{line}: {'.'.join(parts[: private + 1])}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                check(f"{node.module}.{alias.name}", node.lineno)
    aliases = _module_aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (parts := _dotted(node)) and parts[0] in aliases:
            check(".".join([aliases[parts[0]], *parts[1:]]), node.lineno)
    return list(dict.fromkeys(found))


def test_no_module_uses_another_packages_private_names() -> None:
    sources = [p for package in TOP_LEVEL for p in sorted((ROOT / package).rglob("*.py"))]
    found = [use for path in sources for use in _private_uses(path)]
    assert not found, "private names of another package:\n" + "\n".join(found)
