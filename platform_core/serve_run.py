"""``serve run`` with Ray's metrics on a fixed port (``make run``'s ``METRICS_PORT``).

    .venv/bin/python -m platform_core.serve_run CONFIG --metrics-port 8080

``serve run`` starts its local Ray cluster with ``ray.init()``, which gives the Prometheus endpoint a
random port. This starts that cluster first, as ``serve run`` would but with ``_metrics_export_port``,
then hands over to ``serve run`` itself (it keeps a cluster that is already initialised). Everything
else (config, logs, Ctrl-C) is ``serve run``'s own.
"""

import argparse
import logging
import sys
from collections.abc import Sequence

logger = logging.getLogger(__name__)

DEFAULT_METRICS_PORT = 8080


def metrics_url(port: int) -> str:
    """Where Prometheus scrapes Ray's metrics (Serve's and the platform's ``agent_*``)."""
    return f"http://127.0.0.1:{port}/metrics"


def main(argv: Sequence[str] | None = None) -> int:
    """Start the local cluster with its metrics port, then run ``serve run CONFIG`` in this process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the Serve config file to run")
    parser.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT, help="Prometheus port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import ray
    from ray.serve._private.constants import SERVE_NAMESPACE
    from ray.serve.scripts import cli

    ray.init(namespace=SERVE_NAMESPACE, _metrics_export_port=args.metrics_port)
    logger.info("Metrics (Prometheus): %s", metrics_url(args.metrics_port))
    cli.main(args=["run", args.config], prog_name="serve")  # blocks until Ctrl-C, then exits
    return 0


if __name__ == "__main__":
    sys.exit(main())
