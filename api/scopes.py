"""Roles from a token's `scope` claim: the check a route makes before doing anything else.

A handler of a route that needs a role calls `require_scope(request, AGENT_SCOPE)` first; the principal that
`auth_middleware` verified is returned, so the handler need not fetch it again.
"""

from __future__ import annotations

from aiohttp import web

from api import state
from genesis import errors
from genesis.auth.tokens import Principal


def require_scope(request: web.Request, scope: str) -> Principal:
    """The request's principal if its token grants `scope`; 403 FORBIDDEN (naming the scope) if not."""
    principal: Principal | None = request.get(state.PRINCIPAL)
    if principal is None:  # a public route has no principal; calling this there is a wiring mistake
        raise errors.Unauthorized("Missing bearer token")
    if scope not in principal.scopes:
        raise errors.Forbidden(f"This route needs a token with the scope {scope!r}", required_scope=scope)
    return principal
