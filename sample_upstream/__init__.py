"""The bundled sample upstream server: recorded weather, search and web responses for offline mode.

- :mod:`sample_upstream.app`: the ASGI app (``create_app``) and its Serve builder
  (``sample_upstream.app:build_app``, at ``/sample-upstream``; import it from there: it loads Ray);
- :mod:`sample_upstream.weather`: sample NWS, Open-Meteo and geocoding APIs;
- :mod:`sample_upstream.web`: a sample Brave Search API and web pages.

Nothing is exported here: the package is deployed by import path, never imported as a library.
"""

__all__: list[str] = []
