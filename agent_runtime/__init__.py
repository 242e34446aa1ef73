"""What every agent shares: its spec, tool sources, the run loop and the two apps that serve it.

An agent file imports from here only::

    from agent_runtime import A2ASkill, AgentSpec, MCPServers, a2a_app_builder, chat_app_builder

Rooms by job:

- :mod:`agent_runtime.spec`: :class:`AgentSpec` (in code) and :class:`AgentRuntimeArgs` (in a config).
- :mod:`agent_runtime.tools`: where tools come from (MCP servers, A2A agents, local tools).
- :mod:`agent_runtime.factories`: the LangChain graph with the platform's run policy.
- :mod:`agent_runtime.llm_client`: the OpenAI-compatible model behind ``/llm``.
- :mod:`agent_runtime.runner_base`: :class:`BaseAgentRunner`, the seam between the apps and an agent
  framework; :mod:`agent_runtime.runner` implements it on LangGraph (lifecycle) with
  :mod:`agent_runtime.translation` (LangGraph -> events); :mod:`agent_runtime.maf` implements it on
  Microsoft Agent Framework (:class:`MAFAgentRunner`, named by a spec's ``runner``).
- :mod:`agent_runtime.chat`: the SSE ``/chat`` app; :mod:`agent_runtime.a2a`: the A2A app.
- :mod:`agent_runtime.state`: the platform database (memory, threads, leases, tasks, retention).
"""

from agent_runtime.a2a import A2ASkill, a2a_app_builder
from agent_runtime.chat import chat_app_builder
from agent_runtime.factories import AgentRunError, InvalidToolCall, ToolRoundsExceeded, build_tool_agent
from agent_runtime.maf import MAFAgentRunner
from agent_runtime.runner import AgentRunner
from agent_runtime.runner_base import BaseAgentRunner, RunnerHealth
from agent_runtime.spec import AgentRuntimeArgs, AgentSpec
from agent_runtime.tools import A2AAgents, CombinedTools, MCPServers, SourceStatus, StaticTools, ToolSource

__all__ = [
    # defining an agent
    "AgentSpec",
    "AgentRuntimeArgs",
    # where its tools come from
    "ToolSource",
    "SourceStatus",
    "MCPServers",
    "A2AAgents",
    "StaticTools",
    "CombinedTools",
    # running it
    "BaseAgentRunner",
    "AgentRunner",
    "MAFAgentRunner",
    "RunnerHealth",
    "build_tool_agent",
    "AgentRunError",
    "ToolRoundsExceeded",
    "InvalidToolCall",
    # serving it
    "chat_app_builder",
    "a2a_app_builder",
    "A2ASkill",
]
