"""Figures of a running (or self-started) offline stack: load, latency, MCP call overhead (``make bench``)."""

__all__: list[str] = []
