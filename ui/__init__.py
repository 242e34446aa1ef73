"""The Gradio web UI: a page that streams any agent's ``/chat`` answers, served as a Serve app.

- :mod:`ui.app`: the Serve builder (``ui.app:build_app``) and :func:`create_ui_app`, the plain ASGI app.
- :mod:`ui.config`: :class:`UIArgs`, the builder args.
- :mod:`ui.blocks`: the page (:func:`build_blocks`) and its event handlers.
- :mod:`ui.client`: :class:`AgentClient`, which turns every failure into something the page can show.
- :mod:`ui.transcript`: events and thread histories as chat messages that cannot load anything
  (:func:`safe_markdown`).
"""

from ui.app import build_app, create_ui_app
from ui.blocks import build_blocks
from ui.client import AgentClient, HistoryUnavailable
from ui.config import UIArgs
from ui.transcript import safe_markdown

__all__ = [
    # serving the UI
    "build_app",
    "create_ui_app",
    "UIArgs",
    # building blocks
    "build_blocks",
    "AgentClient",
    "HistoryUnavailable",
    "safe_markdown",
]
