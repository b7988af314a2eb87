"""Reading a session's events: a page at a time, or live as Server-Sent Events."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from api import state
from api.live import frame
from api.requests import path_uuid
from genesis import db, errors

routes = web.RouteTableDef()

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
MAX_SEQUENCE = 2**63 - 1  # bigint


@routes.get("/genesis/sessions/{session_id}/events", name="list_events")
async def list_events(request: web.Request) -> web.Response:
    session_id = path_uuid(request, "session_id", errors.SessionNotFound)
    after = _int_param(request.query.get("after"), "after", default=0, low=0)
    limit = _int_param(request.query.get("limit"), "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    page = await db.fetchval(
        request.app[state.POOL],
        "SELECT session_events($1, $2, $3, $4)",
        session_id,
        request[state.USER_ID],
        after,
        limit,
    )
    return web.json_response(page)


@routes.get("/genesis/sessions/{session_id}/events/stream", name="stream_events")
async def stream_events(request: web.Request) -> web.StreamResponse:
    """Replays what the client missed (Last-Event-ID or ?after=), then sends each new event live."""
    session_id = path_uuid(request, "session_id", errors.SessionNotFound)
    user_id = request[state.USER_ID]
    resume = request.headers.get("Last-Event-ID") or request.query.get("after")
    last = _int_param(resume, "Last-Event-ID", default=0, low=0)
    pool = request.app[state.POOL]
    await db.fetchval(pool, "SELECT get_session($1, $2)", session_id, user_id)  # 404 before the stream starts

    hub = request.app[state.HUB]
    settings = request.app[state.SETTINGS]
    subscription = await hub.subscribe(str(session_id), request.transport)
    try:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        while True:  # the replay, page by page; the hub already queues anything newer
            page = await db.fetchval(
                pool, "SELECT session_events($1, $2, $3, $4)", session_id, user_id, last, MAX_LIMIT
            )
            for event in page["events"]:
                await _write(response, frame(event).data, settings.sse_write_timeout)
                last = event["sequence"]
            if len(page["events"]) < MAX_LIMIT:
                break

        while not subscription.overflowed:
            try:
                async with asyncio.timeout(settings.sse_heartbeat):
                    message = await subscription.queue.get()
            except TimeoutError:
                await _write(response, b": heartbeat\n\n", settings.sse_write_timeout)
                continue
            if message.sequence > last:  # the seam: what the replay already sent is not sent twice
                await _write(response, message.data, settings.sse_write_timeout)
                last = message.sequence
        if subscription.overflowed:
            # Too slow to keep up: end the stream; the client resumes from its Last-Event-ID.
            with contextlib.suppress(Exception):
                await _write(response, b"event: overflow\ndata: {}\n\n", settings.sse_write_timeout)
    except (ConnectionResetError, TimeoutError):
        pass  # the client left or stopped reading
    except asyncio.CancelledError:
        if not subscription.client_gone:
            raise
        asyncio.current_task().uncancel()  # type: ignore[union-attr]  # the hub saw the client leave
    finally:
        hub.unsubscribe(subscription)
    return response


async def _write(response: web.StreamResponse, chunk: bytes, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        await response.write(chunk)


def _int_param(raw: str | None, name: str, *, default: int, low: int, high: int = MAX_SEQUENCE) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        bounds = f"{low}..{high}"
        raise errors.ValidationFailed(f"{name} must be an integer {bounds}", fields={name: f"integer {bounds}"})
    return value
