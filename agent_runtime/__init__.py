"""What every agent shares: its spec, tool sources, the run loop and the two apps that serve it.

An agent file imports from here only::

    from agent_runtime import A2ASkill, AgentSpec, MCPServers, a2a_app_builder, chat_app_builder

Rooms by job:

- :mod:`agent_runtime.spec`: :class:`AgentSpec` (in code) and :class:`AgentRuntimeArgs` (in a config).
- :mod:`agent_runtime.tools`: where tools come from (MCP servers, A2A agents, local tools).
- :mod:`agent_runtime.factories`: the LangChain graph with the platform's run policy.
- :mod:`agent_runtime.llm_client`: the OpenAI-compatible model behind ``/llm``.
- :mod:`agent_runtime.runner` (lifecycle) and :mod:`agent_runtime.translation` (LangGraph -> events).
- :mod:`agent_runtime.chat`: the SSE ``/chat`` app; :mod:`agent_runtime.a2a`: the A2A app.
- :mod:`agent_runtime.state`: the platform database (memory, threads, leases, tasks, retention).
"""

from agent_runtime.a2a import A2ASkill, a2a_app_builder
from agent_runtime.chat import chat_app_builder
from agent_runtime.factories import build_tool_agent
from agent_runtime.runner import AgentRunner
from agent_runtime.spec import AgentRuntimeArgs, AgentSpec
from agent_runtime.tools import A2AAgents, CombinedTools, MCPServers, StaticTools, ToolSource

__all__ = [
    "A2AAgents",
    "A2ASkill",
    "AgentRunner",
    "AgentRuntimeArgs",
    "AgentSpec",
    "CombinedTools",
    "MCPServers",
    "StaticTools",
    "ToolSource",
    "a2a_app_builder",
    "build_tool_agent",
    "chat_app_builder",
]
