"""The developer console: one static page (GET /console) for poking the API from a browser.

The page and its files need no token; everything the page calls does. `/console/token` hands out a token
for any user name, so it is registered only in development mode (GENESIS_DEV=1); elsewhere it is a 404.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from api import state
from api.assets import MEDIA, asset_response
from api.requests import json_body
from api.routing import OPTIONS, add_routes
from genesis import errors
from genesis.auth.tokens import issue_token
from genesis.settings import Settings

STATIC = Path(__file__).with_name("static") / "console"
# The page's files, and only those (index.html is the page itself).
ASSETS = {path.name: path for path in STATIC.iterdir() if path.suffix in MEDIA}
DEFAULT_USER = "dev-user"
TOKEN_TTL = 12 * 3600  # as long as the token `make run` prints
_USER = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")

# The page loads nothing from elsewhere; the policy makes the browser hold it to that.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def setup(app: web.Application, settings: Settings) -> None:
    routes = web.RouteTableDef()
    routes.get("/console", name="console")(console_page)
    routes.get("/console/static/{name}", name="console_static")(console_asset)
    add_routes(app, routes)
    if settings.dev:  # one named resource for both methods: the auth middleware lets it through by its name
        token = app.router.add_resource("/console/token", name="console_token")
        token.add_route("GET", dev_token, **OPTIONS)
        token.add_route("POST", dev_token, **OPTIONS)


async def console_asset(request: web.Request) -> web.Response:
    return asset_response(ASSETS.get(request.match_info["name"]), versioned=False)


async def console_page(request: web.Request) -> web.Response:
    return web.Response(
        text=(STATIC / "index.html").read_text(),
        content_type="text/html",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
    )


async def dev_token(request: web.Request) -> web.Response:
    """A token for `user` (JSON body or query), default dev-user. Development mode only."""
    user: object = request.query.get("user")
    if request.method == "POST" and user is None:
        body = await json_body(request, required=False)
        user = body.get("user") if isinstance(body, dict) else None
    if user is None or user == "":
        user = DEFAULT_USER
    if not isinstance(user, str) or not _USER.match(user):
        raise errors.ValidationFailed("user must be 1-200 printable characters", fields={"user": "1-200 characters"})
    token = issue_token(request.app[state.SETTINGS], user, ttl=TOKEN_TTL)
    return web.json_response({"token": token, "user": user, "expires_in": TOKEN_TTL})
