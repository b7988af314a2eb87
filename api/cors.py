"""CORS for the origins in CORS_ORIGINS (nothing is allowed when it is unset)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from api import state

ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-ID, Last-Event-ID"
EXPOSE_HEADERS = "Location, X-Request-ID, Idempotent-Replayed"


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    allowed = origin is not None and _allowed(request.app[state.SETTINGS].cors_origins, origin)
    if request.method == "OPTIONS" and origin and "Access-Control-Request-Method" in request.headers:
        if not allowed:
            return web.json_response(
                {"error_code": "CORS_NOT_ALLOWED", "message": f"Origin {origin!r} is not allowed"}, status=403
            )
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            },
        )
    response = await handler(request)
    if allowed and origin is not None and not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        response.headers["Vary"] = "Origin"
    return response


def _allowed(origins: tuple[str, ...], origin: str) -> bool:
    return "*" in origins or origin in origins
