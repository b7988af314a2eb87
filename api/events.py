"""Reading a session's events: a page at a time, or live as Server-Sent Events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from aiohttp import web

from api import state
from api.live import LIVE_ONLY, Subscription, frame
from api.requests import path_uuid
from genesis import db, errors

log = logging.getLogger("genesis.api")
routes = web.RouteTableDef()

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
MAX_SEQUENCE = 2**63 - 1  # bigint
_MAX_DIGITS = len(str(MAX_SEQUENCE)) + 1  # longer is out of range anyway (and is not worth parsing)


@routes.get("/genesis/sessions/{session_id}/events", name="list_events")
async def list_events(request: web.Request) -> web.Response:
    session_id = path_uuid(request, "session_id", errors.SessionNotFound)
    after = _int_param(request.query.get("after"), "after", default=0, low=0)
    limit = _int_param(request.query.get("limit"), "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    return web.json_response(await _page(request, session_id, after, limit))


@routes.get("/genesis/sessions/{session_id}/events/stream", name="stream_events")
async def stream_events(request: web.Request) -> web.StreamResponse:
    """Replays what the client missed (Last-Event-ID or ?after=), then sends each new event live."""
    session_id = path_uuid(request, "session_id", errors.SessionNotFound)
    after = _resume_point(request)
    principal = request[state.PRINCIPAL]
    with request.app[state.STREAM_LIMITS].admit(principal.user_id):
        return await _stream(request, session_id, after, principal.expires_at)


async def _stream(request: web.Request, session_id: uuid.UUID, after: int, expires_at: float) -> web.StreamResponse:
    async with request.app[state.HUB].subscribe(str(session_id), request.transport) as subscription:
        # Read before the headers go out, so a missing session (404) or a failed read is still a whole answer.
        page = await _page(request, session_id, after)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        try:
            await _send(request, response, subscription, session_id, page, after, expires_at)
        except (ConnectionResetError, TimeoutError):
            pass  # the client left or stopped reading
        except asyncio.CancelledError:
            if not subscription.ended:
                raise
            # The hub ended the stream: its client left, or the hub itself stopped.
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
        except Exception:
            # The headers are out, so an error answer would land inside the body: end the stream instead;
            # the client resumes from its Last-Event-ID.
            log.exception("event stream of session %s failed", session_id)
    return response


async def _send(
    request: web.Request,
    response: web.StreamResponse,
    subscription: Subscription,
    session_id: uuid.UUID,
    page: dict[str, Any],
    last: int,
    expires_at: float,
) -> None:
    settings = request.app[state.SETTINGS]
    last = await _replay(request, response, session_id, page, last)
    # The callers' frames still hold the first page: empty it, or every idle stream keeps its replay in memory.
    page.clear()

    while not subscription.overflowed:
        left = expires_at - time.time()
        if left <= 0:
            # The token has expired: end the stream; the client comes back with a fresh one and Last-Event-ID.
            with contextlib.suppress(Exception):
                await _write(response, b"event: token-expired\ndata: {}\n\n", settings.sse_write_timeout)
            return
        try:
            async with asyncio.timeout(min(settings.sse_heartbeat, left)):
                message = await subscription.queue.get()
        except TimeoutError:
            if expires_at > time.time():
                await _write(response, b": heartbeat\n\n", settings.sse_write_timeout)
            continue
        if message.sequence == LIVE_ONLY:  # task progress: no id, so no seam to mind
            await _write(response, message.data, settings.sse_write_timeout)
        elif message.sequence > last:  # the seam: what the replay already sent is not sent twice
            await _write(response, message.data, settings.sse_write_timeout)
            last = message.sequence
    # Too slow to keep up: end the stream; the client resumes from its Last-Event-ID.
    with contextlib.suppress(Exception):
        await _write(response, b"event: overflow\ndata: {}\n\n", settings.sse_write_timeout)


async def _replay(
    request: web.Request, response: web.StreamResponse, session_id: uuid.UUID, page: dict[str, Any], last: int
) -> int:
    """Sends the replay page by page (the hub already queues anything newer); returns the last sequence sent.
    A function of its own so that its locals (the pages, the last event) are gone once it returns."""
    seconds = request.app[state.SETTINGS].sse_write_timeout
    while True:
        for event in page["events"]:
            await _write(response, frame(event).data, seconds)
            last = event["sequence"]
        if len(page["events"]) < MAX_LIMIT:
            return last
        page = await _page(request, session_id, last)


async def _page(request: web.Request, session_id: uuid.UUID, after: int, limit: int = MAX_LIMIT) -> dict[str, Any]:
    page: dict[str, Any] = await db.fetchval(
        request.app[state.POOL],
        "SELECT session_events($1, $2, $3, $4)",
        session_id,
        request[state.USER_ID],
        after,
        limit,
    )
    return page


def _resume_point(request: web.Request) -> int:
    """Last-Event-ID (a reconnecting EventSource sends it) wins over ?after=; a bad value is named as given."""
    header = request.headers.get("Last-Event-ID")
    if header:
        return _int_param(header, "Last-Event-ID", default=0, low=0)
    return _int_param(request.query.get("after"), "after", default=0, low=0)


async def _write(response: web.StreamResponse, chunk: bytes, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        await response.write(chunk)


def _int_param(raw: str | None, name: str, *, default: int, low: int, high: int = MAX_SEQUENCE) -> int:
    if raw is None:
        return default
    # ASCII digits only, as the document's integer: Python's int() would also take " 5", "+5", "5_0" and "٥".
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= _MAX_DIGITS else low - 1
    if not low <= value <= high:
        bounds = f"{low}..{high}"
        raise errors.ValidationFailed(f"{name} must be an integer {bounds}", fields={name: f"integer {bounds}"})
    return value
