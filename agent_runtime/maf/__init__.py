"""Agents on Microsoft Agent Framework (MAF) behind the platform's runner seam.

- :mod:`agent_runtime.maf.runner`: :class:`MAFAgentRunner`, the run of a MAF ``Agent`` (model, MCP tools,
  sessions) inside the platform's run lifecycle;
- :mod:`agent_runtime.maf.translation`: MAF stream updates -> ``/chat`` events, with the run policy;
- :mod:`agent_runtime.maf.threads`: a stored MAF session as the thread API's view.

Nothing here imports MAF at import time: it is loaded when a MAF agent is built.
"""

from agent_runtime.maf.runner import MAFAgentRunner

__all__ = ["MAFAgentRunner"]
