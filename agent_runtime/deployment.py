"""Serve deployment sizing shared by agent apps (SSE chat, A2A): CPUs, concurrency, autoscaling.

Defaults fit agents, which mostly wait on the LLM and tools: a fraction of a CPU per replica, and many
concurrent requests per replica, because every open SSE stream holds one of Serve's
``max_ongoing_requests`` slots for the whole run (Serve's default of 5 would queue the sixth chat).
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ServeDeploymentArgs(BaseModel):
    """Builder args that size one agent deployment."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: float = Field(default=0.2, gt=0, description="CPUs reserved per replica.")
    min_replicas: int = Field(default=1, ge=0, description="Replicas at idle (0 scales to zero).")
    max_replicas: int = Field(
        default=1, ge=1, description="Upper bound; above min_replicas enables autoscaling."
    )
    target_ongoing_requests: float = Field(
        default=16, gt=0, description="Autoscaling target of concurrent requests (open streams) per replica."
    )
    max_ongoing_requests: int = Field(
        default=64, ge=1, description="Concurrent requests (open streams) one replica accepts."
    )

    @model_validator(mode="after")
    def _replica_bounds(self) -> "ServeDeploymentArgs":
        if self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be >= min_replicas")
        return self

    def deployment_options(self) -> dict[str, Any]:
        """Keyword arguments for ``Deployment.options(...)``."""
        options: dict[str, Any] = {
            "ray_actor_options": {"num_cpus": self.num_cpus},
            "max_ongoing_requests": self.max_ongoing_requests,
        }
        if self.max_replicas > self.min_replicas:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.min_replicas
        return options
