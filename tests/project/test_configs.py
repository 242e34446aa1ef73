"""Every checked-in config is valid for Ray Serve and Anyscale, and every app's args for its builder.

Offline: no cluster, no network. A typo in an arg name fails here (the args models forbid extras), not at
deploy time on a GPU cluster.
"""

import inspect
from pathlib import Path
from types import FunctionType

import pytest
import yaml
from anyscale.service.models import ServiceConfig
from pydantic import BaseModel
from ray._common.utils import import_attr
from ray.serve.schema import ServeDeploySchema

from llm.vllm_backend import vllm_llm_config_kwargs
from platform_core.settings import PlatformSettings
from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT
SERVE_CONFIGS = ["serve_config.yaml", "serve_multi_config.yaml"]
ANYSCALE_CONFIGS = ["anyscale_service_config.yaml", "anyscale_service_multi_config.yaml"]
ROUTES = {
    "llm": "/llm",
    "mcp_weather": "/mcp-weather",
    "mcp_web_search": "/mcp-web-search",
    "weather_agent": "/weather-agent",
    "research_agent": "/research-agent",
    "travel_agent": "/travel-agent",
    "packing_agent": "/packing-agent",
    "a2a_weather": "/a2a-weather",
    "a2a_research": "/a2a-research",
    "a2a_travel": "/a2a-travel",
    "a2a_packing": "/a2a-packing",
    "openai": "/openai",
    "ui": "/ui",
}
# the nine services of the reference design, the packing agent and its A2A face, the agents as OpenAI
# models, the UI
MULTI_APPS = set(ROUTES)


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def builder_args(app: dict) -> BaseModel:
    """Validate an app's args exactly as Ray does before calling its builder."""
    builder = import_attr(app["import_path"])
    assert isinstance(builder, FunctionType), f"{app['import_path']} is not a builder function"
    (param,) = inspect.signature(builder).parameters.values()
    assert inspect.isclass(param.annotation) and issubclass(param.annotation, BaseModel), app["import_path"]
    return param.annotation.model_validate(app.get("args") or {})


@pytest.mark.parametrize("name", SERVE_CONFIGS + ANYSCALE_CONFIGS)
def test_apps_follow_the_route_table_and_args_validate(name: str) -> None:
    config = load(name)
    ServeDeploySchema.model_validate({"applications": config["applications"]})
    for app in config["applications"]:
        assert ROUTES[app["name"]] == app["route_prefix"], app["name"]
        args = builder_args(app)
        if app["name"].startswith("a2a_"):
            assert args.route_prefix == app["route_prefix"], "card URLs need the app's own route prefix"


@pytest.mark.parametrize("name", SERVE_CONFIGS)
def test_local_configs_fit_a_two_core_machine(name: str) -> None:
    config = load(name)
    ServeDeploySchema.model_validate(config)
    reserved = 0.0
    for app in config["applications"]:
        args = builder_args(app)
        reserved += args.num_cpus * max(1, getattr(args, "min_replicas", 1))  # the UI has one replica
    assert reserved <= 1.8, f"{name} reserves {reserved} CPUs at idle"
    llm = next(app for app in config["applications"] if app["name"] == "llm")
    assert llm["args"]["backend"] == "auto"
    # auto picks vllm on any GPU, so a local config must not wait for one GPU type
    assert "accelerator_type" not in vllm_llm_config_kwargs(builder_args(llm))


def test_multi_configs_deploy_all_nine_services() -> None:
    for name in ("serve_multi_config.yaml", "anyscale_service_multi_config.yaml"):
        assert MULTI_APPS <= {app["name"] for app in load(name)["applications"]}, name


@pytest.mark.parametrize("name", ANYSCALE_CONFIGS)
def test_anyscale_configs_are_production_ready(name: str) -> None:
    service = ServiceConfig.from_yaml(str(ROOT / name))
    assert service.env_vars["PUBLIC_BASE_URL"].startswith("https://")
    # Identity is on in production; the platform's keys, not Anyscale's token, hold Authorization.
    assert PlatformSettings(**service.env_vars).auth == "on"
    assert service.query_auth_token_enabled is False
    apps = {app["name"]: app for app in service.applications}
    llm_args = builder_args(apps["llm"])
    assert llm_args.backend == "vllm", "production names its backend explicitly"
    kwargs = vllm_llm_config_kwargs(llm_args)
    assert kwargs["accelerator_type"] == "L4", "production names the GPU its worker nodes have"
    assert kwargs["engine_kwargs"]["tool_call_parser"] == "hermes"
    assert kwargs["engine_kwargs"]["enable_auto_tool_choice"] is True
    for app_name, app in apps.items():
        if app_name.endswith("_agent"):
            assert builder_args(app).num_cpus == 1, f"{app_name}: 1 CPU per agent replica in production"


def test_anyscale_config_rejects_unknown_fields(tmp_path: Path) -> None:
    config = load("anyscale_service_config.yaml")
    config["requirments"] = "typo.txt"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    with pytest.raises((ValueError, TypeError)):
        ServiceConfig.from_yaml(str(bad))


def test_configuration_reference_is_current() -> None:
    from platform_core.config_reference import OUTPUT, render

    assert OUTPUT.read_text() == render(), "docs/configuration.md is out of date: run `make docs`"
