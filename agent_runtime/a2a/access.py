"""The A2A app's door: credentials, task ownership and the card's security scheme.

- Every route but the agent card and ``/health`` needs ``agent:<name>``
  (:class:`identity.middleware.RequireScope`, which also mints the delegation the task's ``/chat`` run
  carries).
- a2a-sdk keys a task's owner on ``ServerCallContext.user.user_name`` (our task store scopes it per agent:
  :mod:`agent_runtime.state.database`); :class:`PrincipalContextBuilder` makes it the principal's id, so
  another principal's task is "not found" on get, cancel and subscribe, and a listing shows only one's
  own. With auth off every caller is the SDK's unauthenticated user, as before.
- With auth on the card declares an HTTP bearer scheme and requires it (:func:`require_bearer`), so
  a2a-sdk clients send their key through the SDK's own ``AuthInterceptor``.
"""

from a2a.auth.user import User
from a2a.server.context import ServerCallContext
from a2a.server.routes import DefaultServerCallContextBuilder
from a2a.types import AgentCard, HTTPAuthSecurityScheme, SecurityRequirement, SecurityScheme, StringList
from starlette.requests import Request

from identity.gate import ANONYMOUS
from identity.middleware import caller_of, delegation_of

BEARER_SCHEME = "bearer"
DELEGATION_STATE = "delegation"


class PrincipalUser(User):
    """The authenticated principal as a2a-sdk's user: its id is the owner of the tasks it creates."""

    def __init__(self, principal_id: str) -> None:
        self._id = principal_id

    @property
    def is_authenticated(self) -> bool:
        """Always: only an identified caller gets here."""
        return True

    @property
    def user_name(self) -> str:
        """The principal's id (``key:<key id>``), the tasks' owner."""
        return self._id


class PrincipalContextBuilder(DefaultServerCallContextBuilder):
    """The SDK's call context, with the caller as its user and the delegation in its state."""

    def build(self, request: Request) -> ServerCallContext:
        """The default context, minus the credential in its copy of the headers."""
        context = super().build(request)
        headers = context.state.get("headers")
        if isinstance(headers, dict):
            headers.pop("authorization", None)  # the secret goes no further than the door
        context.state[DELEGATION_STATE] = delegation_of(request.scope)
        return context

    def build_user(self, request: Request) -> User:
        """The principal of the request (the SDK's unauthenticated user while auth is off)."""
        caller = caller_of(request.scope)
        if caller is None or caller is ANONYMOUS:
            return super().build_user(request)
        return PrincipalUser(caller.principal.id)


def delegation_in(context: ServerCallContext | None) -> str | None:
    """The delegation a task's run carries (None while auth is off)."""
    if context is None:
        return None
    token = context.state.get(DELEGATION_STATE)
    return token if isinstance(token, str) else None


def require_bearer(card: AgentCard) -> None:
    """Declare (and require) an HTTP bearer scheme on ``card``: an API key, or the platform's delegation."""
    card.security_schemes[BEARER_SCHEME].CopyFrom(
        SecurityScheme(
            http_auth_security_scheme=HTTPAuthSecurityScheme(
                scheme="Bearer",
                bearer_format="API key (rap_...) from platform-keys",
                description="An API key with the scope agent:<name> (or agent:*).",
            )
        )
    )
    if not any(BEARER_SCHEME in requirement.schemes for requirement in card.security_requirements):
        card.security_requirements.append(SecurityRequirement(schemes={BEARER_SCHEME: StringList()}))
