"""Identity for any ASGI app of the platform.

The principal of a Starlette request (:func:`authenticate_request`), and a FastAPI dependency that guards
a route with a scope (:func:`require_scope`).

::

    app = FastAPI()
    install_api_error_handlers(app)          # 401/403/429 as {"error": {"code", "message"}}
    install_identity(app, identity)          # an opened IdentityService

    @app.post("/chat")
    async def chat(principal: Principal = Depends(require_scope("agent:weather"))) -> ...:
        ...

The errors are :class:`~platform_core.api_errors.APIError` subclasses (:mod:`identity.errors`), so the
platform's one error handler renders them with their headers (``WWW-Authenticate``, ``Retry-After``).
"""

from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI, Request
from starlette.datastructures import Headers

from identity.scopes import Principal, parse_scope
from identity.service import IdentityService
from platform_core.errors import ConfigurationError

STATE_ATTRIBUTE = "identity"


def install_identity(app: FastAPI, identity: IdentityService) -> None:
    """Make ``identity`` the one :func:`require_scope` and :func:`authenticate_request` use in ``app``."""
    setattr(app.state, STATE_ATTRIBUTE, identity)


def identity_of(request: Request) -> IdentityService:
    """The :class:`IdentityService` installed in the request's app (``ConfigurationError`` if none)."""
    identity = getattr(request.app.state, STATE_ATTRIBUTE, None)
    if not isinstance(identity, IdentityService):
        raise ConfigurationError("no IdentityService installed in this app: call install_identity(app, ...)")
    return identity


async def authenticate_request(
    request: Request | Headers | Mapping[str, str],
    scope: str | None = None,
    *,
    identity: IdentityService | None = None,
    check_budget: bool = True,
) -> Principal:
    """The principal of a request (or of its headers), allowed ``scope``; raises the ``APIError``.

    ``identity`` defaults to the one installed in the request's app; pass it with bare headers.
    """
    if isinstance(request, Request):
        identity = identity or identity_of(request)
        headers: Mapping[str, str] = request.headers
    else:
        if identity is None:
            raise ConfigurationError("authenticate_request(headers) needs identity=")
        headers = request
    return await identity.authenticate(headers, scope, check_budget=check_budget)


def require_scope(scope: str, *, check_budget: bool = True) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the request's :class:`Principal`, which holds ``scope`` (else 401/403/429).

    The principal is also left on ``request.state.principal`` for the route's own code.
    """
    wanted = parse_scope(scope)

    async def dependency(request: Request) -> Principal:
        principal = await authenticate_request(request, wanted, check_budget=check_budget)
        request.state.principal = principal
        return principal

    return dependency
