"""Plumbing every app of the platform shares: settings, Serve sizing, config tools, errors, backoff.

The lowest layer, below :mod:`protocols` and :mod:`identity`: every other package imports it, it imports
none of them.

- :mod:`platform_core.settings`: the one ``BaseSettings`` (environment variables of every app).
- :mod:`platform_core.deployment`: the Serve sizing args every builder accepts.
- :mod:`platform_core.serve_config`: the local-run transform behind ``make run`` (a CLI).
- :mod:`platform_core.config_reference`: ``docs/configuration.md`` from the models (``make docs``).
- :mod:`platform_core.errors`: the exception tree's root and error descriptions safe to show a client.
- :mod:`platform_core.api_errors`: the one HTTP error type of the apps and its handlers (import it from
  there: it loads FastAPI, which the settings do not need).
- :mod:`platform_core.backoff`: jittered exponential backoff.
- :mod:`platform_core.sql`: the platform database's URL, engines and schemas (import it from there: it
  loads SQLAlchemy and the drivers).
"""

from platform_core.backoff import Backoff
from platform_core.deployment import MaxOngoingRequests, NumCpus, ServeDeploymentArgs
from platform_core.errors import ConfigurationError, PlatformError, describe_error
from platform_core.settings import PlatformSettings, get_settings

__all__ = [
    # settings
    "PlatformSettings",
    "get_settings",
    # Serve sizing
    "MaxOngoingRequests",
    "NumCpus",
    "ServeDeploymentArgs",
    # errors
    "ConfigurationError",
    "PlatformError",
    "describe_error",
    # retries
    "Backoff",
]
