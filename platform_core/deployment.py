"""Serve deployment sizing shared by every app builder (agents, A2A adapters, MCP servers, the LLM).

One flat set of fields (``num_cpus``, ``min_replicas``, ``max_replicas``, ``target_ongoing_requests``,
``max_ongoing_requests``, ``upscale_delay_s``, ``downscale_delay_s``) means the same in every Serve
config; an app's args model subclasses :class:`ServeDeploymentArgs` and only changes defaults, via the
annotated field types below (so constraints and descriptions live here once).

The base defaults fit agents, which mostly wait on the LLM and tools: a fraction of a CPU per replica,
and many concurrent requests per replica, because every open SSE stream holds one of Serve's
``max_ongoing_requests`` slots for the whole run (Serve's default of 5 would queue the sixth chat).
"""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

NumCpus = Annotated[float, Field(ge=0, description="Logical CPUs reserved per replica.")]
MinReplicas = Annotated[int, Field(ge=0, description="Replicas kept running when idle (0 scales to zero).")]
MaxReplicas = Annotated[
    int, Field(ge=1, description="Upper bound of replicas; above min_replicas enables autoscaling.")
]
TargetOngoingRequests = Annotated[
    float,
    Field(gt=0, description="Autoscaling target of concurrent requests (open streams) per replica."),
]
UpscaleDelay = Annotated[
    float,
    Field(
        ge=0,
        description="Seconds the load must stay above the target before Serve adds replicas (Serve's "
        "default 30). Short reacts to a burst; on a small machine a new replica costs CPU to start.",
    ),
]
DownscaleDelay = Annotated[
    float,
    Field(
        ge=0,
        description="Seconds the load must stay below the target before Serve removes replicas (Serve's "
        "default 600). A removed replica finishes its runs first (graceful shutdown).",
    ),
]
MaxOngoingRequests = Annotated[
    int,
    Field(
        ge=1,
        description="Concurrent requests (open streams) one replica runs at once. Agents, A2A apps and MCP "
        "servers let max_queued_requests more wait in the replica, then answer 503; other apps leave the "
        "rest queued in Serve's proxy.",
    ),
]


def check_replica_bounds(min_replicas: int, max_replicas: int) -> None:
    """Reject bounds with ``max_replicas < min_replicas`` (``ValueError``, so pydantic reports the field)."""
    if max_replicas < min_replicas:
        raise ValueError(f"max_replicas ({max_replicas}) must be >= min_replicas ({min_replicas})")


# A replica asked to stop (a roll-out, a downscale) finishes its requests in flight for up to its longest
# request plus this margin before Serve kills it (Serve's own default is 20 s, shorter than an agent run).
SHUTDOWN_MARGIN_S = 30.0


class ServeDeploymentArgs(BaseModel):
    """Builder args that size one deployment. Unknown fields are rejected, so a typo fails the deploy."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: NumCpus = 0.2
    min_replicas: MinReplicas = 1
    max_replicas: MaxReplicas = 1
    target_ongoing_requests: TargetOngoingRequests = 16
    max_ongoing_requests: MaxOngoingRequests = 64
    upscale_delay_s: UpscaleDelay = 30.0
    downscale_delay_s: DownscaleDelay = 600.0

    @model_validator(mode="after")
    def _replica_bounds(self) -> "ServeDeploymentArgs":
        check_replica_bounds(self.min_replicas, self.max_replicas)
        return self

    def autoscaling_config(self) -> dict[str, Any]:
        """Serve's ``autoscaling_config`` for these bounds."""
        return {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_s,
            "downscale_delay_s": self.downscale_delay_s,
        }

    def deployment_options(self) -> dict[str, Any]:
        """Keyword arguments for ``Deployment.options(...)``: autoscaled, or a fixed count if min == max."""
        options: dict[str, Any] = {
            "ray_actor_options": {"num_cpus": self.num_cpus},
            "max_ongoing_requests": self.max_ongoing_requests,
        }
        if self.max_replicas > self.min_replicas:
            options["autoscaling_config"] = self.autoscaling_config()
        else:
            options["num_replicas"] = self.min_replicas
        return options
