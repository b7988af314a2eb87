"""Handlers for sessions and their commands: parse, call one SQL function, map the result."""

from __future__ import annotations

import logging

from aiohttp import web

from api import batches, metrics, state
from api.requests import header_token, json_body, path_uuid
from genesis import commands, db, errors
from genesis.logs import bind
from genesis.telemetry import tracing

log = logging.getLogger("genesis.api")
routes = web.RouteTableDef()


@routes.post("/genesis/sessions", name="create_session")
async def create_session(request: web.Request) -> web.Response:
    # The body is optional: none at all is `{}`; one that is there must be JSON (whitespace alone is INVALID_JSON).
    body = await json_body(request, required=request.body_exists)
    if not isinstance(body, dict):
        raise errors.ValidationFailed("Body must be a JSON object", fields={"body": "must be an object"})
    # The request's trace context (the tracing middleware's span) is stored with the event it causes.
    row = await db.call(
        request.app[state.POOL], "SELECT create_session($1, $2, $3, $4) AS session", request[state.USER_ID],
        request[state.REQUEST_ID], *tracing.current_context(),
    )  # fmt: skip
    assert row is not None
    session = row["session"]
    log.info("session created", extra={"fields": {"session_id": session["id"]}})
    location = request.app.router["get_session"].url_for(session_id=session["id"])
    return web.json_response(session, status=201, headers={"Location": str(location)})


@routes.get("/genesis/sessions/{session_id}", name="get_session")
async def get_session(request: web.Request) -> web.Response:
    session_id = path_uuid(request, "session_id", errors.SessionNotFound)
    session = await db.fetchval(
        request.app[state.POOL], "SELECT get_session($1, $2)", session_id, request[state.USER_ID]
    )
    return web.json_response(session)


@routes.post("/genesis/sessions/{session_id}/commands", name="submit_command")
async def submit_command(request: web.Request) -> web.Response:
    session_id = path_uuid(request, "session_id", errors.SessionNotFound)
    idempotency_key = header_token(request, "Idempotency-Key")
    body = await json_body(request, required=True)
    if not isinstance(body, dict):
        raise errors.ValidationFailed("Body must be a JSON object", fields={"body": "must be an object"})
    unknown = sorted(set(body) - {"command_type", "payload"})
    if unknown:
        raise errors.ValidationFailed("Unknown fields in body", fields=dict.fromkeys(unknown, "not allowed"))
    command_type, payload = commands.validate(body.get("command_type"), body.get("payload", {}))
    request[metrics.COMMAND_TYPE] = command_type  # the metrics middleware counts the outcome

    # Recorded with whatever other commands are waiting, in one transaction (group commit, api/batches.py).
    command = batches.Command(
        session_id, command_type, payload, request[state.USER_ID], idempotency_key, request[state.REQUEST_ID],
        *tracing.current_context(),
    )  # fmt: skip
    try:
        row = await request.app[state.BATCHER].submit(command)
    except errors.DuplicateCommand:
        log.info("duplicate command refused", extra={"fields": {"command_type": command_type}})
        raise
    command_id = str(row["command_id"])
    bind(command_id=command_id, correlation_id=command_id)
    log.info(
        "command accepted",
        extra={"fields": {"command_type": command_type, "replayed": row["replayed"], "status": row["command_status"]}},
    )
    headers = {"Idempotent-Replayed": "true"} if row["replayed"] else {}
    if row["is_async"]:
        location = request.app.router["get_command"].url_for(session_id=str(session_id), command_id=command_id)
        headers["Location"] = str(location)
        body = {"command_id": command_id, "status": row["command_status"], "message": f"{command_type} accepted"}
        return web.json_response(body, status=202, headers=headers)
    body = {
        "command_id": command_id,
        "status": row["command_status"],
        "message": f"{command_type} completed",
        "event_ids": [str(e) for e in row["event_ids"]],
        "session": row["session"],
    }
    return web.json_response(body, status=200, headers=headers)


@routes.get("/genesis/sessions/{session_id}/commands/{command_id}", name="get_command")
async def get_command(request: web.Request) -> web.Response:
    session_id = path_uuid(request, "session_id", errors.SessionNotFound)
    command_id = path_uuid(request, "command_id", errors.CommandNotFound)
    command = await db.fetchval(
        request.app[state.POOL], "SELECT get_command($1, $2, $3)", session_id, command_id, request[state.USER_ID]
    )
    return web.json_response(command)
