"""The A2A face of an agent: its card, the A2A 1.0 and 0.3 bindings, and the executor behind them."""

from agent_runtime.a2a.app import A2AAgentArgs, A2ASkill, a2a_app_builder, create_a2a_app

__all__ = ["A2AAgentArgs", "A2ASkill", "a2a_app_builder", "create_a2a_app"]
