"""How every route is registered.

- A GET route answers GET alone: aiohttp would add HEAD to each, which the API's document does not name, so HEAD
  is a 405 like any other method a route does not take.
- An `Expect` other than `100-continue` is ignored, as RFC 9110 lets a server do: aiohttp's own handler answers it
  with a text/plain 417 before the middlewares could shape the error. On no route (a 404 or 405 to come) aiohttp's
  check still runs, and api/server.py answers its 417 in JSON.
"""

from __future__ import annotations

from typing import Any

from aiohttp import hdrs, web
from aiohttp.web_urldispatcher import _default_expect_handler


async def expect(request: web.Request) -> None:
    if request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
        await _default_expect_handler(request)  # "HTTP/1.1 100 Continue", on HTTP/1.1


OPTIONS: dict[str, Any] = {"expect_handler": expect}


def add_routes(app: web.Application, table: web.RouteTableDef) -> None:
    for route in table:
        assert isinstance(route, web.RouteDef), route
        options = {**OPTIONS, **route.kwargs}
        if route.method == hdrs.METH_GET:
            options.setdefault("allow_head", False)
        app.router.add_routes([web.RouteDef(route.method, route.path, route.handler, options)])
