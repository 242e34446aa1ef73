"""Principals and scopes: who is calling, and what they may do.

A scope is one of:

| scope | allows |
|---|---|
| ``agent:<name>`` | the agent ``<name>``: its ``/chat``, threads and A2A face |
| ``agent:*`` | every agent |
| ``llm`` | direct access to ``/llm`` |
| ``mcp:<server>`` | the MCP server ``<server>`` |
| ``mcp:*`` | every MCP server |
| ``admin`` | keys, usage and every thread; it allows every other scope too |

Names (``<name>``, ``<server>``) are what the platform calls the agent or server (``weather``,
``web-search``): a letter or digit, then letters, digits, ``.``, ``_`` or ``-``, at most 64.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

ADMIN = "admin"
LLM = "llm"
_FAMILIES = ("agent", "mcp")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def parse_scope(text: str) -> str:
    """``text`` as a scope, stripped; raises ``ValueError`` (saying what is allowed) for anything else."""
    scope = text.strip()
    if scope in (ADMIN, LLM):
        return scope
    family, sep, name = scope.partition(":")
    if sep and family in _FAMILIES and (name == "*" or _NAME.fullmatch(name)):
        return scope
    raise ValueError(f"not a scope: {text!r}; use agent:<name>, agent:*, llm, mcp:<server>, mcp:* or admin")


def scope_allows(granted: str, wanted: str) -> bool:
    """Whether holding the scope ``granted`` allows what the scope ``wanted`` guards."""
    if granted == ADMIN or granted == wanted:
        return True
    family, sep, name = granted.partition(":")
    return bool(sep) and name == "*" and wanted.startswith(f"{family}:")


@dataclass(frozen=True)
class Principal:
    """Who a request acts for, and what it may do.

    ``id`` is stable (usage and ownership are keyed by it), ``name`` is for people, ``scopes`` are
    what it holds.

    For an API key the id is ``key:<key id>`` and the name is the key's name. ``delegated``: the
    request is an internal hop the platform makes for this principal (:mod:`identity.delegation`); the
    platform chose the hop, so it is allowed every scope but ``admin``.
    """

    id: str
    name: str
    scopes: frozenset[str]
    delegated: bool = False

    @classmethod
    def of(cls, id: str, name: str, scopes: Iterable[str]) -> "Principal":
        """A principal with ``scopes`` checked by :func:`parse_scope`."""
        return cls(id=id, name=name, scopes=frozenset(parse_scope(scope) for scope in scopes))

    def allows(self, scope: str) -> bool:
        """Whether one of this principal's scopes allows ``scope`` (a delegated hop: any but ``admin``)."""
        if self.delegated and scope != ADMIN:
            return True
        return any(scope_allows(granted, scope) for granted in self.scopes)

    @property
    def is_admin(self) -> bool:
        """Whether this principal holds ``admin`` (sees every principal's data)."""
        return ADMIN in self.scopes
