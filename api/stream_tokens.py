"""POST /genesis/sessions/{id}/stream-tokens (CONTRACT §5): a short-lived token for `?stream_token=` on the session's
event stream, which a browser's native EventSource opens without an Authorization header. The token itself is
genesis/auth/stream_tokens.py; the stream route accepts it in the auth middleware."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from api import state
from api.requests import path_uuid
from genesis import db, errors

routes = web.RouteTableDef()


@routes.post("/genesis/sessions/{session_id}/stream-tokens", name="create_stream_token")
async def create_stream_token(request: web.Request) -> web.Response:
    session_id = path_uuid(request, "session_id", errors.SessionNotFound)
    # Only the session's owner gets one: to anyone else the session does not exist (404), as on every route.
    await db.fetchval(request.app[state.POOL], "SELECT get_session($1, $2)", session_id, request[state.USER_ID])
    token, expires_at = request.app[state.STREAM_TOKENS].mint(request[state.PRINCIPAL], session_id)
    body = {
        "stream_token": token,
        "expires_at": datetime.fromtimestamp(expires_at, UTC).isoformat(timespec="milliseconds"),
    }
    return web.json_response(body, status=201, headers={"Cache-Control": "no-store"})
