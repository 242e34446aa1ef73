"""Builder args of the ``/llm`` app (``args:`` in a Serve config, validated by Ray into :class:`LLMAppArgs`).

One args model covers every backend so a config switches backends by changing ``backend`` alone; fields
of the other backends are ignored. Unknown fields are rejected, so a typo fails the deploy loudly.

The sizing fields are those of :class:`~platform_core.deployment.ServeDeploymentArgs`, except that
``max_replicas`` may be unset (each backend has its own default). So :class:`LLMAppArgs` is not one:
:meth:`LLMAppArgs.sizing` gives the ``ServeDeploymentArgs`` of a backend.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from platform_core.deployment import (
    SHUTDOWN_MARGIN_S,
    MaxOngoingRequests,
    MinReplicas,
    NumCpus,
    ServeDeploymentArgs,
    TargetOngoingRequests,
    check_replica_bounds,
)

Backend = Literal["auto", "vllm", "upstream", "scripted"]
BACKENDS: tuple[str, ...] = ("auto", "vllm", "upstream", "scripted")

SCRIPTED_MODEL_ID = "scripted-offline-model"
VLLM_DEFAULT_MAX_REPLICAS = 4


class LLMAppArgs(BaseModel):
    """Everything the ``/llm`` app can be told; ``None`` fields fall back to platform settings."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    # --- replicas (the sizing fields of ServeDeploymentArgs, in its order) ------------------------------
    # num_cpus and max_ongoing_requests size the CPU backends' replicas (upstream, scripted); vllm
    # replicas are sized by Ray Serve LLM. The replica bounds and target apply to every backend.
    num_cpus: NumCpus = 0.1
    min_replicas: MinReplicas = 1
    max_replicas: int | None = Field(
        default=None,
        ge=1,
        description="Upper bound of replicas; above min_replicas enables autoscaling. Unset means the "
        f"backend's default: max(min_replicas, {VLLM_DEFAULT_MAX_REPLICAS}) for vllm; for the CPU backends "
        "max(min_replicas, 1), a fixed replica count unless min_replicas is 0.",
    )
    target_ongoing_requests: TargetOngoingRequests = 32
    max_ongoing_requests: MaxOngoingRequests = 100

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
    accelerator_type: str | None = Field(
        default=None,
        description="GPU type the replicas need (e.g. L4, A10G, H100). Unset: any GPU the cluster has; a "
        "type the cluster lacks leaves the replicas pending forever, so production configs name theirs.",
    )
    max_model_len: int = Field(default=65536, gt=0)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    tool_call_parser: str | None = Field(default="hermes", description="vLLM tool-call parser.")
    enable_auto_tool_choice: bool = True
    stream_batching_interval_ms: float = Field(
        default=0,
        ge=0,
        description="Ray Serve LLM token batching window; 0 removes the ~50 ms TTFT cost (Ray #59681).",
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
        description="Pin every request to this upstream model; /v1/models then lists only it. "
        "Default LLM_UPSTREAM_MODEL.",
    )
    request_timeout_s: float = Field(default=300, gt=0, description="Upstream read timeout per request.")

    # --- scripted (deterministic offline model) ---------------------------------------------------------
    scripted_model_id: str = Field(default=SCRIPTED_MODEL_ID)
    scripted_token_delay_ms: float = Field(
        default=0, ge=0, description="Pause between streamed chunks, to make streaming visible in a UI."
    )

    @model_validator(mode="after")
    def _replica_bounds(self) -> "LLMAppArgs":
        if self.max_replicas is not None:
            check_replica_bounds(self.min_replicas, self.max_replicas)
        return self

    def sizing(self, backend: str) -> ServeDeploymentArgs:
        """The replica sizing of ``backend``, an unset ``max_replicas`` replaced by its default."""
        default_max = VLLM_DEFAULT_MAX_REPLICAS if backend == "vllm" else 1
        fields = self.model_dump(include=set(ServeDeploymentArgs.model_fields))
        if self.max_replicas is None:
            fields["max_replicas"] = max(self.min_replicas, default_max)
        return ServeDeploymentArgs.model_validate(fields)

    def deployment_options(self) -> dict[str, Any]:
        """Serve deployment options of the CPU backends (vllm builds its own deployments)."""
        options = self.sizing("cpu").deployment_options()
        options["graceful_shutdown_timeout_s"] = self.request_timeout_s + SHUTDOWN_MARGIN_S
        return options
