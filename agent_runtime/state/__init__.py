"""Durable state in the platform database: checkpoints, thread views, run leases, A2A tasks, retention."""

from agent_runtime.state.database import Database, DatabaseUnavailable, DatabaseURL
from agent_runtime.state.leases import ThreadBusy, ThreadLeases
from agent_runtime.state.threads import ThreadView

__all__ = ["Database", "DatabaseURL", "DatabaseUnavailable", "ThreadBusy", "ThreadLeases", "ThreadView"]
