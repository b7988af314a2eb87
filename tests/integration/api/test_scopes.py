"""`require_scope`: a route that needs a role answers 403 FORBIDDEN to a token without it, over a real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from api import state
from api.middlewares import auth_middleware, error_middleware
from api.scopes import require_scope
from genesis.auth.tokens import AGENT_SCOPE, TokenVerifier, issue_token
from genesis.settings import Settings
from tests.conftest import JWT_SECRET

AppClient = Callable[[web.Application], Any]


async def _agent_only(request: web.Request) -> web.Response:
    principal = require_scope(request, AGENT_SCOPE)
    return web.json_response({"user": principal.user_id, "scopes": sorted(principal.scopes)})


def _app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware, auth_middleware])
    app[state.VERIFIER] = TokenVerifier(settings)
    app.router.add_post("/genesis/tasks/{command_id}/progress", _agent_only, name="agent_progress")
    return app


async def test_a_route_needing_a_scope_refuses_tokens_without_it(aiohttp_client: AppClient) -> None:
    settings = Settings(jwt_secret=JWT_SECRET)
    client = await aiohttp_client(_app(settings))
    url = "/genesis/tasks/x/progress"

    def bearer(scopes: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + issue_token(settings, "agent-1", scopes=scopes)}

    for scopes in ("", "genesis:reader", "genesis:agents", "GENESIS:AGENT"):
        response = await client.post(url, headers=bearer(scopes))
        assert response.status == 403, scopes
        body = await response.json()
        assert body["error_code"] == "FORBIDDEN"
        assert body["required_scope"] == AGENT_SCOPE
        assert body["message"]

    allowed = await client.post(url, headers=bearer(f"openid {AGENT_SCOPE} profile"))
    assert allowed.status == 200
    assert await allowed.json() == {"user": "agent-1", "scopes": [AGENT_SCOPE, "openid", "profile"]}

    anonymous = await client.post(url)  # no token at all is still 401, not 403
    assert anonymous.status == 401
