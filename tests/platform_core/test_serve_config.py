"""The local-run transform that `make run` and the integration tests apply to the checked-in configs."""

import importlib
import inspect
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from platform_core.serve_config import SAMPLE_UPSTREAM_APP, for_local_run, load_config, main
from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT

BASE = {
    "http_options": {"host": "0.0.0.0", "port": 8000},
    "applications": [
        {"name": "llm", "route_prefix": "/llm", "import_path": "llm.app:build_app", "args": {}},
        {
            "name": "agent",
            "route_prefix": "/a",
            "import_path": "agents.weather:build_app",
            "runtime_env": {"env_vars": {"KEEP": "me", "OFFLINE": "0"}},
        },
    ],
}


def test_offline_adds_sample_upstream_and_env_to_every_app() -> None:
    config = for_local_run(BASE, port=18001, offline=True)
    names = [app["name"] for app in config["applications"]]
    assert names == ["sample_upstream", "llm", "agent"]
    assert config["http_options"]["port"] == 18001
    for app in config["applications"]:
        env = app["runtime_env"]["env_vars"]
        assert env["OFFLINE"] == "1"
        assert env["SERVE_BASE_URL"] == "http://127.0.0.1:18001"  # 0.0.0.0 is reached via loopback
    assert config["applications"][2]["runtime_env"]["env_vars"]["KEEP"] == "me"
    assert "runtime_env" not in BASE["applications"][0], "the input config must not be mutated"


def test_online_run_adds_no_sample_server_and_keeps_offline_unset() -> None:
    config = for_local_run(BASE, port=8000)
    assert [app["name"] for app in config["applications"]] == ["llm", "agent"]
    assert "OFFLINE" not in config["applications"][0]["runtime_env"]["env_vars"]


def test_sample_upstream_not_added_twice() -> None:
    config = for_local_run({"applications": [dict(SAMPLE_UPSTREAM_APP)]}, offline=True)
    assert len(config["applications"]) == 1


def test_invalid_config_is_rejected_by_serve_schema(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"applications": [{"name": "x", "import_path": 42, "bogus": 1}]}))
    with pytest.raises(ValidationError):
        load_config(bad)


def test_cli_writes_a_config_serve_accepts(tmp_path) -> None:
    src = tmp_path / "in.yaml"
    src.write_text(yaml.safe_dump(BASE))
    out = tmp_path / "out.yaml"
    assert main([str(src), "--port", "18002", "--offline", "-o", str(out)]) == 0
    written = load_config(out)
    assert written["applications"][0]["route_prefix"] == "/sample-upstream"
    assert written["http_options"]["port"] == 18002


@pytest.mark.parametrize("path", sorted(ROOT.glob("serve_*.yaml")), ids=lambda path: path.name)
def test_checked_in_config_args_validate_against_their_builders(path: Path) -> None:
    """Every app's ``args`` is valid for its builder's args model (typos and renamed fields fail here)."""
    for app in yaml.safe_load(path.read_text())["applications"]:
        module, name = app["import_path"].split(":")
        builder = getattr(importlib.import_module(module), name)
        [param] = inspect.signature(builder).parameters.values()
        model = typing.get_type_hints(builder)[param.name]
        model.model_validate(app.get("args") or {})
