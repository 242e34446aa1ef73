"""MCP tool servers, and how any FastMCP server runs as a stateless, autoscaled Ray Serve app.

- :mod:`mcp_servers.serving`: :func:`build_mcp_app` serves any FastMCP factory at ``<route>/mcp``;
  :class:`MCPScalingArgs` are its Serve config ``args``.
- :mod:`mcp_servers.weather`: geocoding, forecasts, alerts, air quality (logic in ``weather_service``).
- :mod:`mcp_servers.web_search`: Brave search (``web_brave``) and ``fetch_url``, which reads pages through
  :class:`UrlGuard` (``url_guard``) and :class:`SafeFetcher` (``web_fetch``) and marks them as untrusted
  (``web_content``).
- :mod:`mcp_servers.http_upstream`: JSON upstream calls whose failures are tool errors a model can read.

Serve configs name each server's builder by module: ``mcp_servers.weather:build_app``,
``mcp_servers.web_search:build_app``.
"""

from mcp_servers.http_upstream import JSONUpstream, UpstreamError
from mcp_servers.serving import MCPScalingArgs, ServerFactory, build_mcp_app, create_mcp_asgi_app
from mcp_servers.url_guard import HostNotResolved, UrlGuard, UrlRefused
from mcp_servers.weather import WeatherServerArgs, create_weather_server
from mcp_servers.web_fetch import FetchError, FetchLimits, RobotsDisallowed, SafeFetcher
from mcp_servers.web_search import WebSearchServerArgs, create_web_search_server

__all__ = [
    # serving any FastMCP server
    "build_mcp_app",
    "create_mcp_asgi_app",
    "MCPScalingArgs",
    "ServerFactory",
    # the bundled servers
    "WeatherServerArgs",
    "create_weather_server",
    "WebSearchServerArgs",
    "create_web_search_server",
    # building blocks of tools that call the web
    "JSONUpstream",
    "UpstreamError",
    "UrlGuard",
    "UrlRefused",
    "HostNotResolved",
    "SafeFetcher",
    "FetchLimits",
    "FetchError",
    "RobotsDisallowed",
]
