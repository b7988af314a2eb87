"""Request ids, authentication and the one place errors become JSON bodies."""

from __future__ import annotations

import logging
import re
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from api import state
from genesis import db, errors
from genesis.logs import bind

log = logging.getLogger("genesis.api")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# aiohttp's own refusals (no route, wrong method, body too large) in the service's error shape.
HTTP_CODES = {
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    417: "EXPECTATION_FAILED",  # an Expect other than 100-continue, on no route (api/server.py; routes ignore it)
}
HTTP_CODE_UNLISTED = "HTTP_ERROR"  # any other status aiohttp refuses with

# The routes that take `?stream_token=` instead of a bearer token: the event stream alone.
STREAM_TOKEN = "stream_token"
STREAM_TOKEN_ROUTES = frozenset({"stream_events"})


# Carried on every error response, so the metrics middleware need not parse the body back.
ERROR_CODE = web.ResponseKey("error_code", str)


def error_response(status: int, error_code: str, message: str, **fields: object) -> web.Response:
    response = web.json_response({"error_code": error_code, "message": message, **fields}, status=status)
    response[ERROR_CODE] = error_code
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="genesis"'
    retry_after = fields.get("retry_after")
    if isinstance(retry_after, int):  # a refusal that says when to come back says it in the header too
        response.headers["Retry-After"] = str(retry_after)
    return response


def refusal(exc: errors.DomainError) -> web.Response:
    """The error response for a domain error."""
    return error_response(exc.status, exc.error_code, exc.message, **exc.fields)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The client's X-Request-ID (or a new one) for the logs and events; `request_id_header` echoes it."""
    given = request.headers.get("X-Request-ID", "")
    request_id = given if _REQUEST_ID.match(given) else str(uuid.uuid4())
    request[state.REQUEST_ID] = request_id
    bind(request_id=request_id)
    return await handler(request)


async def request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """An on_response_prepare hook: an event stream's headers go out before its handler returns."""
    request_id = request.get(state.REQUEST_ID)
    if request_id is not None:
        response.headers["X-Request-ID"] = request_id


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.DomainError as exc:
        if exc.status >= 500:
            log.warning("request refused: %s", exc.message)
        return refusal(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_CODES.get(exc.status, HTTP_CODE_UNLISTED)
        response = error_response(exc.status, code, exc.reason)
        for name in ("Allow",):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except db.DATABASE_GONE:
        log.exception("database unavailable")
        return refusal(errors.Unavailable("The database is unavailable; try again"))
    except Exception:
        log.exception("unhandled error")
        return refusal(errors.Internal("Internal error"))


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route
    if route.resource is not None and route.name not in state.PUBLIC_ROUTES and request.method != "OPTIONS":
        stream_token = request.query.get(STREAM_TOKEN) if route.name in STREAM_TOKEN_ROUTES else None
        if stream_token is not None:  # what a native EventSource sends instead of a header (CONTRACT §5)
            principal = request.app[state.STREAM_TOKENS].verify(stream_token, request.match_info["session_id"])
        else:
            principal = await request.app[state.VERIFIER].authenticate(request.headers.get("Authorization"))
        request[state.PRINCIPAL] = principal
        request[state.USER_ID] = principal.user_id
        bind(user_id=principal.user_id)
    return await handler(request)
