"""What defines an agent and what a deployment may change.

:class:`AgentSpec` is the agent in code; :class:`AgentRuntimeArgs` is what a Serve config's ``args`` may
change.

An agent file holds only a spec: its prompt and where its tools come from. Everything that differs
between a laptop, CI and production (LLM endpoint, tool server URLs, limits) is an arg with a default
from the platform settings, so the same spec runs everywhere.
"""

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.factories import DEFAULT_MAX_TOOL_ROUNDS
from agent_runtime.tools.sources import ToolSource

DEFAULT_RUN_TIMEOUT_S = 120.0


class AgentRuntimeArgs(BaseModel):
    """Builder args every agent deployment shares (the SSE chat app, the A2A app). ``None`` = default."""

    model_config = ConfigDict(extra="forbid")

    llm_base_url: str | None = Field(
        default=None, description="OpenAI base URL (ending in /v1); default: SERVE_BASE_URL + /llm/v1."
    )
    llm_model: str | None = Field(
        default=None, description="Model id; default: LLM_MODEL, else the first chat model /v1/models lists."
    )
    llm_request_timeout_s: float = Field(default=120.0, gt=0, description="Timeout of one LLM request.")
    mcp_urls: dict[str, str] = Field(
        default_factory=dict,
        description="Tool endpoint name -> absolute URL or route, replacing the agent file's default.",
    )
    tools_refresh_s: float | None = Field(
        default=None, gt=0, description="How often tool lists are re-discovered (seconds)."
    )
    run_timeout_s: float | None = Field(
        default=None, gt=0, le=3600, description="Time limit of one run; default: the agent's own."
    )
    max_tool_rounds: int | None = Field(
        default=None, ge=0, le=100, description="Tool rounds per run; default: the agent's own."
    )


RunnerFactory = Callable[["AgentSpec", AgentRuntimeArgs], object]
"""Builds an agent's runner in a replica from its spec and its deployment's args (``from_args``).

It returns an :class:`agent_runtime.runner_base.BaseAgentRunner` (typed ``object`` here: that module
imports this one); the chat app checks it when it builds the agent."""


@dataclass(frozen=True)
class AgentSpec:
    """An agent as its file declares it.

    ``runner`` picks the agent framework: ``None`` is the platform's LangGraph runner
    (:class:`agent_runtime.runner.AgentRunner`); an agent of another framework names its runner's
    factory, e.g. ``MAFAgentRunner.from_args`` (Microsoft Agent Framework).
    """

    name: str
    system_prompt: str
    tools: ToolSource
    description: str = ""
    max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS
    run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S
    runner: RunnerFactory | None = None
