"""The ``/llm`` builder: backend selection, builder args, vLLM config (no Ray cluster, no vLLM needed)."""

import ast
import logging
import sys
from pathlib import Path

import pytest
import ray
from pydantic import ValidationError

from llm.app import build_app, resolve_backend
from llm.config import LLMAppArgs
from llm.vllm_backend import build_vllm_app, vllm_llm_config_kwargs
from platform_core.settings import PlatformSettings, get_settings


def settings(**values: object) -> PlatformSettings:
    return PlatformSettings.model_validate({"offline": False, "llm_backend": None, **values})


def no_gpu_query() -> float:
    raise AssertionError("the GPU count must not be asked here")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch):
    for name in (
        "LLM_BACKEND",
        "OFFLINE",
        "LLM_UPSTREAM_BASE_URL",
        "LLM_UPSTREAM_API_KEY",
        "LLM_UPSTREAM_MODEL",
    ):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("gpus", "upstream_setting", "expected"),
    [
        (1.0, None, "vllm"),
        (0.0, "http://upstream.example/v1", "upstream"),
        (0.0, None, "scripted"),
    ],
)
def test_auto_prefers_gpu_then_upstream_then_scripted(
    gpus: float, upstream_setting: str | None, expected: str
) -> None:
    backend, reason = resolve_backend(
        LLMAppArgs(), settings(llm_upstream_base_url=upstream_setting), lambda: gpus
    )
    assert backend == expected and "auto" in reason


def test_auto_uses_the_upstream_url_from_args() -> None:
    args = LLMAppArgs(upstream_base_url="http://upstream.example/v1")
    assert resolve_backend(args, settings(), lambda: 0)[0] == "upstream"


def test_offline_makes_auto_scripted_without_asking_for_gpus() -> None:
    backend, reason = resolve_backend(LLMAppArgs(), settings(offline=True), no_gpu_query)
    assert backend == "scripted" and "OFFLINE" in reason


def test_explicit_backend_is_kept_even_offline() -> None:
    assert resolve_backend(LLMAppArgs(backend="vllm"), settings(offline=True), no_gpu_query)[0] == "vllm"


def test_env_override_wins_over_args() -> None:
    backend, reason = resolve_backend(
        LLMAppArgs(backend="vllm"), settings(llm_backend=" Scripted "), no_gpu_query
    )
    assert backend == "scripted" and "LLM_BACKEND" in reason


def test_unknown_env_backend_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="LLM_BACKEND='gpt'.*auto, vllm, upstream, scripted"):
        resolve_backend(LLMAppArgs(), settings(llm_backend="gpt"), no_gpu_query)


def test_upstream_without_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="LLM_UPSTREAM_BASE_URL"):
        resolve_backend(LLMAppArgs(backend="upstream"), settings(), no_gpu_query)


def test_args_reject_typos_and_bad_values() -> None:
    with pytest.raises(ValidationError):
        LLMAppArgs.model_validate({"backend": "gpu"})
    with pytest.raises(ValidationError):
        LLMAppArgs.model_validate({"max_model_lenght": 4096})
    with pytest.raises(ValidationError):
        LLMAppArgs.model_validate({"min_replicas": 3, "max_replicas": 2})


def test_build_app_scripted_deployment(clean_env: pytest.MonkeyPatch) -> None:
    app = build_app(LLMAppArgs(backend="scripted", num_cpus=0.2, min_replicas=2))
    deployment = app._bound_deployment
    assert deployment.name == "ScriptedLLM"
    assert deployment.ray_actor_options["num_cpus"] == 0.2
    assert deployment.max_ongoing_requests == 100 and deployment.num_replicas == 2
    assert deployment.init_args == ("scripted-offline-model", 0)


def test_build_app_cpu_autoscaling(clean_env: pytest.MonkeyPatch) -> None:
    args = LLMAppArgs(backend="scripted", min_replicas=1, max_replicas=3)
    autoscaling = build_app(args)._bound_deployment._deployment_config.autoscaling_config
    assert (autoscaling.min_replicas, autoscaling.max_replicas) == (1, 3)


def test_build_app_upstream_keeps_env_secrets_out_of_the_app_graph(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LLM_UPSTREAM_BASE_URL", "http://upstream.example/v1")
    clean_env.setenv("LLM_UPSTREAM_API_KEY", "sk-from-env")
    app = build_app(LLMAppArgs(backend="upstream", upstream_model="m1", request_timeout_s=30))
    deployment = app._bound_deployment
    assert deployment.name == "UpstreamLLM"
    assert deployment.init_args == ("http://upstream.example/v1", None, "m1", 30)


def test_upstream_model_pin_falls_back_to_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LLM_UPSTREAM_BASE_URL", "http://upstream.example/v1")
    clean_env.setenv("LLM_UPSTREAM_MODEL", "gpt-from-env")
    pinned_by_env = build_app(LLMAppArgs(backend="upstream"))._bound_deployment.init_args
    pinned_by_args = build_app(
        LLMAppArgs(backend="upstream", upstream_model="m1")
    )._bound_deployment.init_args
    assert pinned_by_env[2] == "gpt-from-env" and pinned_by_args[2] == "m1"


def test_build_app_auto_logs_the_choice_loudly(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert not ray.is_initialized()
    clean_env.setenv("OFFLINE", "1")
    with caplog.at_level(logging.WARNING, logger="llm.app"):
        app = build_app(LLMAppArgs())
    assert app._bound_deployment.name == "ScriptedLLM"
    assert any(
        r.levelno == logging.WARNING and "SCRIPTED" in r.getMessage() and "OFFLINE" in r.getMessage()
        for r in caplog.records
    )


def test_vllm_kwargs_reference_settings() -> None:
    kwargs = vllm_llm_config_kwargs(LLMAppArgs())
    assert kwargs == {
        "model_loading_config": {
            "model_id": "Qwen/Qwen3-4B-Instruct-2507-FP8",
            "model_source": "Qwen/Qwen3-4B-Instruct-2507-FP8",
        },
        "engine_kwargs": {
            "max_model_len": 65536,
            "gpu_memory_utilization": 0.9,
            "enable_auto_tool_choice": True,
            "tool_call_parser": "hermes",
        },
        "deployment_config": {
            "autoscaling_config": {
                "min_replicas": 1,
                "max_replicas": 4,
                "target_ongoing_requests": 32,
                "upscale_delay_s": 30.0,
                "downscale_delay_s": 600.0,
            }
        },
        "experimental_configs": {"stream_batching_interval_ms": 0},
    }


def test_vllm_kwargs_overrides() -> None:
    args = LLMAppArgs(
        model_id="my-model",
        model_source="/models/qwen",
        accelerator_type="H100",
        enable_auto_tool_choice=False,
        engine_kwargs={"max_model_len": 8192, "enforce_eager": True},
        min_replicas=2,
        max_replicas=8,
        target_ongoing_requests=16,
        stream_batching_interval_ms=10,
    )
    kwargs = vllm_llm_config_kwargs(args)
    assert kwargs["model_loading_config"] == {"model_id": "my-model", "model_source": "/models/qwen"}
    assert kwargs["accelerator_type"] == "H100"
    assert kwargs["engine_kwargs"] == {
        "max_model_len": 8192,
        "gpu_memory_utilization": 0.9,
        "enforce_eager": True,
    }
    assert kwargs["deployment_config"]["autoscaling_config"]["max_replicas"] == 8
    assert kwargs["experimental_configs"] == {"stream_batching_interval_ms": 10}


def _class_fields(path: Path, class_name: str) -> set[str]:
    tree = ast.parse(path.read_text())
    cls = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == class_name)
    return {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}


def test_vllm_kwargs_use_ray_llm_config_field_names() -> None:
    """Checked against the installed Ray source, since ``ray.serve.llm`` cannot be imported without vLLM."""
    source = Path(ray.__file__).parent / "llm/_internal/serve/core/configs/llm_config.py"
    kwargs = vllm_llm_config_kwargs(LLMAppArgs())
    assert set(kwargs) <= _class_fields(source, "LLMConfig")
    assert set(kwargs["model_loading_config"]) <= _class_fields(source, "ModelLoadingConfig")


def test_vllm_without_ray_llm_names_the_gpu_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray.serve.llm", None)  # what an install without ray[llm] looks like
    with pytest.raises(RuntimeError, match="uv sync --extra gpu"):
        build_vllm_app(LLMAppArgs(backend="vllm"))


def test_vllm_asks_for_any_gpu_unless_a_type_is_configured() -> None:
    """An L4 default left H100/A10G/workstation GPUs idle and the replica pending forever."""
    assert LLMAppArgs().accelerator_type is None
    assert "accelerator_type" not in vllm_llm_config_kwargs(LLMAppArgs())
    assert vllm_llm_config_kwargs(LLMAppArgs(accelerator_type="A10G"))["accelerator_type"] == "A10G"


def test_vllm_build_logs_the_gpu_and_memory_settings(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "ray.serve.llm", None)  # the log comes before the vLLM import
    caplog.set_level(logging.INFO, logger="llm.vllm_backend")
    with pytest.raises(RuntimeError):
        build_vllm_app(LLMAppArgs(backend="vllm"))
    with pytest.raises(RuntimeError):
        build_vllm_app(
            LLMAppArgs(
                backend="vllm",
                accelerator_type="L4",
                gpu_memory_utilization=0.8,
                engine_kwargs={"tensor_parallel_size": 2, "max_model_len": 8192},
            )
        )
    default, configured = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    for part in (
        "any GPU",
        "1 GPU(s) per replica",
        "tensor_parallel_size 1",
        "gpu_memory_utilization 0.9",
        "max_model_len 65536",
        "replicas 1..4",
    ):
        assert part in default, (part, default)
    for part in (
        "accelerator_type L4",
        "2 GPU(s) per replica",
        "gpu_memory_utilization 0.8",
        "max_model_len 8192",
    ):
        assert part in configured, (part, configured)


def test_replica_bounds_default_per_backend() -> None:
    """One set of sizing fields; unset max_replicas: a fixed count on CPU, up to 4 vLLM replicas."""
    args = LLMAppArgs()
    options = args.deployment_options()
    assert options == {
        "ray_actor_options": {"num_cpus": 0.1},
        "max_ongoing_requests": 100,
        "num_replicas": 1,
        "graceful_shutdown_timeout_s": args.request_timeout_s + 30,  # a stream in flight may finish
    }
    assert args.sizing("vllm").autoscaling_config() == {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 32,
        "upscale_delay_s": 30.0,
        "downscale_delay_s": 600.0,
    }
    assert LLMAppArgs(min_replicas=6).sizing("vllm").max_replicas == 6
    assert LLMAppArgs(min_replicas=3).deployment_options()["num_replicas"] == 3
