"""Builder args of the ``/llm`` app (``args:`` in a Serve config, validated by Ray into :class:`LLMAppArgs`).

One args model covers every backend so a config switches backends by changing ``backend`` alone; fields
of the other backends are ignored. Unknown fields are rejected, so a typo fails the deploy loudly.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

Backend = Literal["auto", "vllm", "upstream", "scripted"]
BACKENDS: tuple[str, ...] = ("auto", "vllm", "upstream", "scripted")

SCRIPTED_MODEL_ID = "scripted-offline-model"


class AutoscalingArgs(BaseModel):
    """The subset of Serve's ``autoscaling_config`` these apps expose."""

    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=4, ge=1)
    target_ongoing_requests: float = Field(default=32, gt=0)

    @model_validator(mode="after")
    def _check_bounds(self) -> "AutoscalingArgs":
        if self.max_replicas < self.min_replicas:
            raise ValueError("autoscaling max_replicas must be >= min_replicas")
        return self

    def to_serve(self) -> dict[str, Any]:
        return self.model_dump()


class LLMAppArgs(BaseModel):
    """Everything the ``/llm`` app can be told; ``None`` fields fall back to platform settings."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    backend: Backend = Field(
        default="auto",
        description="auto: vllm if the cluster has GPUs, else upstream if configured, else scripted. "
        "The LLM_BACKEND env var overrides it; OFFLINE=1 makes auto pick scripted.",
    )

    # --- vllm (ray.serve.llm) -------------------------------------------------------------------------
    model_id: str = Field(
        default="Qwen/Qwen3-4B-Instruct-2507-FP8", description="Model id clients request (vllm)."
    )
    model_source: str | None = Field(
        default=None, description="Where the weights come from (HF id, local path, s3://); default model_id."
    )
    accelerator_type: str | None = Field(default="L4", description="GPU type the replicas need, or None.")
    max_model_len: int = Field(default=65536, gt=0)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    tool_call_parser: str | None = Field(default="hermes", description="vLLM tool-call parser.")
    enable_auto_tool_choice: bool = True
    stream_batching_interval_ms: float = Field(
        default=0,
        ge=0,
        description="Ray Serve LLM token batching window; 0 removes the ~50 ms TTFT cost (Ray #59681).",
    )
    autoscaling: AutoscalingArgs = Field(
        default_factory=AutoscalingArgs, description="Autoscaling of the vLLM replicas."
    )
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra vLLM engine args; they override the fields above."
    )

    # --- upstream (any OpenAI-compatible endpoint) ------------------------------------------------------
    upstream_base_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL ending in /v1; default LLM_UPSTREAM_BASE_URL."
    )
    upstream_api_key: SecretStr | None = Field(
        default=None, description="Bearer key for the upstream; default LLM_UPSTREAM_API_KEY."
    )
    upstream_model: str | None = Field(
        default=None,
        description="Pin every request to this upstream model; /v1/models then lists only it.",
    )
    request_timeout_s: float = Field(default=300, gt=0, description="Upstream read timeout per request.")

    # --- scripted (deterministic offline model) ---------------------------------------------------------
    scripted_model_id: str = Field(default=SCRIPTED_MODEL_ID)
    scripted_token_delay_ms: float = Field(
        default=0, ge=0, description="Pause between streamed chunks, to make streaming visible in a UI."
    )

    # --- CPU replicas (upstream and scripted) -----------------------------------------------------------
    num_cpus: float = Field(default=0.1, gt=0)
    max_ongoing_requests: int = Field(default=100, ge=1)
    num_replicas: int = Field(
        default=1, ge=1, description="Fixed replica count when cpu_autoscaling is unset."
    )
    cpu_autoscaling: AutoscalingArgs | None = Field(
        default=None, description="Autoscale the CPU replicas instead of running num_replicas."
    )

    def cpu_deployment_options(self) -> dict[str, Any]:
        """Serve deployment options for the CPU-only backends."""
        options: dict[str, Any] = {
            "ray_actor_options": {"num_cpus": self.num_cpus},
            "max_ongoing_requests": self.max_ongoing_requests,
        }
        if self.cpu_autoscaling is not None:
            options["autoscaling_config"] = self.cpu_autoscaling.to_serve()
        else:
            options["num_replicas"] = self.num_replicas
        return options
