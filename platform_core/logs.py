"""The platform's log lines in Ray Serve's own logs, each with the fields that find its request.

Inside a replica Serve configures only the ``ray.serve`` logger (its ``logging_config``: level,
``encoding: JSON``, the file under ``logs/serve/``, the access log). A record of any other logger has no
handler there, so an INFO line of ours was lost. :func:`route_into_serve_logs` gives the platform's
package loggers Serve's handlers and level: our lines land in the replica's log file and console, with
Serve's ``application``/``deployment``/``replica``/``request_id`` fields, JSON where the config says so.

:class:`RunFields` adds what Serve cannot know: while a request runs, ``trace_id`` (the W3C trace id of
the current span, also when tracing is off), and inside an agent run ``run_id``, ``thread_id`` and
``agent`` (set with :func:`run_log_fields`). JSON lines carry them as keys; text lines are unchanged.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from opentelemetry import trace

from platform_core.settings import get_settings

SERVE_LOGGER = "ray.serve"
PLATFORM_LOGGERS = (
    "agent_runtime",
    "agents",
    "identity",
    "llm",
    "mcp_servers",
    "platform_core",
    "protocols",
    "sample_upstream",
    "ui",
)
"""The top-level packages whose loggers follow Serve's logging config in a replica."""

_run_fields: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("platform_run_log_fields", default=())


@contextmanager
def run_log_fields(*, run_id: str, thread_id: str, agent: str) -> Iterator[None]:
    """Inside the block (and in tasks started there), log records carry the run's ids."""
    token = _run_fields.set((("run_id", run_id), ("thread_id", thread_id), ("agent", agent)))
    try:
        yield
    finally:
        _run_fields.reset(token)


class RunFields(logging.Filter):
    """Adds ``trace_id`` (while a span is current) and the agent run's ids to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Set the fields the record does not have yet; never drops a record."""
        context = trace.get_current_span().get_span_context()
        if context.is_valid and not hasattr(record, "trace_id"):
            record.trace_id = format(context.trace_id, "032x")
        for key, value in _run_fields.get():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def route_into_serve_logs() -> bool:
    """In a Serve replica, send the platform's loggers to Serve's handlers; whether it did (idempotent).

    Their level is ``LOG_LEVEL`` (the platform's setting); Serve's ``logging_config`` decides the rest.

    Outside a replica (tests, scripts, the CLI tools) nothing changes: they configure logging themselves.
    """
    serve_logger = logging.getLogger(SERVE_LOGGER)
    level = get_settings().log_level.upper()
    if not _in_replica() or not serve_logger.handlers:
        return False
    # On the handlers, not the loggers: a logger's filters never see its children's records. Serve's
    # own lines (the access log) gain the trace id too.
    for handler in serve_logger.handlers:
        if not any(isinstance(f, RunFields) for f in handler.filters):
            handler.addFilter(RunFields())
    for name in PLATFORM_LOGGERS:
        package_logger = logging.getLogger(name)
        package_logger.handlers = list(serve_logger.handlers)
        package_logger.setLevel(level)
        package_logger.propagate = False
    return True


def _in_replica() -> bool:
    try:
        from ray import serve

        serve.get_replica_context()
        return True
    except Exception:  # noqa: BLE001 - no replica context (or no Ray where a tool of ours runs)
        return False
