"""CORS for the origins in CORS_ORIGINS (nothing is allowed when it is unset)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from api import state
from api.middlewares import refusal
from genesis import errors

ALLOW_METHODS = "GET, POST, OPTIONS"
# traceparent / tracestate: a browser app traced by OpenTelemetry JS continues its trace into the API.
ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-ID, Last-Event-ID, traceparent, tracestate"
EXPOSE_HEADERS = "Location, X-Request-ID, Idempotent-Replayed"


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answers preflight requests; `cors_headers` decorates every other answer."""
    origin = request.headers.get("Origin")
    if request.method == "OPTIONS" and origin and "Access-Control-Request-Method" in request.headers:
        if not _allowed(request, origin):
            return refusal(errors.CorsNotAllowed(f"Origin {origin!r} is not allowed"))
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
    return await handler(request)


async def cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """An on_response_prepare hook: it runs as the headers go out, which for an event stream is before
    its handler returns, so a middleware would be too late."""
    origin = request.headers.get("Origin")
    if origin is None or not _allowed(request, origin):
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    response.headers["Vary"] = "Origin"


def _allowed(request: web.Request, origin: str) -> bool:
    origins = request.app[state.SETTINGS].cors_origins
    return "*" in origins or origin in origins
