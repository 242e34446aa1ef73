"""The vLLM app's ``GET /health`` without vLLM: the readiness logic, and the Ray 2.60 names its router uses.

``ray.serve.llm`` cannot be imported without vLLM, so ``llm/vllm_ingress.py`` (the router subclass that
routes ``/health``) is checked against the installed Ray source instead; the logic it calls is
:func:`llm.vllm_health.vllm_health`, exercised here with probes standing in for an ``LLMServer`` handle.
"""

import ast
import asyncio
import json
from pathlib import Path

import ray

from llm.vllm_health import vllm_health
from tests.support.paths import REPO_ROOT

RAY_ROOT = Path(ray.__file__).parent
INGRESS_MODULE = REPO_ROOT / "llm" / "vllm_ingress.py"


async def test_health_is_ready_once_a_model_replica_answers() -> None:
    calls: list[str] = []

    async def answers() -> None:
        calls.append("check_health")

    response = await vllm_health("qwen", answers)
    assert response.status_code == 200
    assert json.loads(response.body) == {
        "ready": True,
        "backend": "vllm",
        "model": "qwen",
        "config_version": None,
    }
    assert calls == ["check_health"]


async def test_health_is_503_while_no_replica_answers() -> None:
    never = asyncio.Event()

    async def loading() -> None:  # a request queued for a replica that is still loading its weights
        await never.wait()

    response = await vllm_health("qwen", loading, timeout_s=0.05)
    body = json.loads(response.body)
    assert response.status_code == 503
    assert body["ready"] is False and body["model"] == "qwen" and body["backend"] == "vllm"
    assert "loading" in body["reason"]


async def test_health_is_503_when_the_engine_check_fails() -> None:
    async def dead_engine() -> None:
        raise RuntimeError("engine dead")

    response = await vllm_health("qwen", dead_engine)
    assert response.status_code == 503
    assert "engine dead" in json.loads(response.body)["reason"]


def _module_file(module: str) -> Path:
    path = RAY_ROOT.parent / module.replace(".", "/")
    return path.with_suffix(".py") if path.with_suffix(".py").exists() else path / "__init__.py"


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.If | ast.Try):  # TYPE_CHECKING / optional imports
            names |= _top_level_names(ast.Module(body=list(ast.iter_child_nodes(node)), type_ignores=[]))
    return names


def _class(path: Path, name: str) -> ast.ClassDef:
    tree = ast.parse(path.read_text())
    return next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == name)


def _methods(cls: ast.ClassDef) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_the_health_router_uses_names_ray_defines() -> None:
    """Every ``from ray... import X`` of llm/vllm_ingress.py exists in the installed Ray."""
    tree = ast.parse(INGRESS_MODULE.read_text())
    imports = [n for n in tree.body if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("ray")]
    assert imports
    for node in imports:
        assert node.module is not None
        defined = _top_level_names(ast.parse(_module_file(node.module).read_text()))
        package = _module_file(node.module).parent
        submodules = {alias.name for alias in node.names if (package / alias.name / "__init__.py").exists()}
        missing = {alias.name for alias in node.names} - defined - submodules
        assert not missing, f"{node.module} has no {missing}"


def test_the_ray_apis_behind_the_health_route_have_the_expected_shape() -> None:
    ingress_py = RAY_ROOT / "llm/_internal/serve/core/ingress/ingress.py"
    tree = ast.parse(ingress_py.read_text())
    make = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "make_fastapi_ingress")
    assert "endpoint_map" in {a.arg for a in make.args.kwonlyargs}
    endpoints = next(
        n
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "DEFAULT_ENDPOINTS"
    )
    assert isinstance(endpoints.value, ast.Dict)
    routed = {k.value for k in endpoints.value.keys if isinstance(k, ast.Constant)}
    assert {"models", "chat"} <= routed and "health" not in routed, "Ray added /health: drop our route"
    ingress = _methods(_class(ingress_py, "OpenAiIngress"))
    assert "lora_paths" in {a.arg for a in ingress["__init__"].args.kwonlyargs}
    assert "get_deployment_options" in ingress
    server = _methods(_class(RAY_ROOT / "llm/_internal/serve/core/server/llm_server.py", "LLMServer"))
    assert isinstance(server["check_health"], ast.AsyncFunctionDef)
