"""The OpenAPI 3.1 description of the API (GET /openapi.json) and a self-contained /docs page."""

from __future__ import annotations

import functools
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

from api.events import DEFAULT_LIMIT, MAX_LIMIT
from api.middlewares import HTTP_CODE_UNLISTED, HTTP_CODES
from api.requests import MAX_BODY_BYTES
from api.tasks import BODIES as TASK_BODIES
from genesis import commands, errors
from genesis.tokens import AGENT_SCOPE

routes = web.RouteTableDef()

_REF = "#/components/schemas/{model}"

# Refusals of SQL functions no API route calls: requeue_outbox / discard_outbox (the operator's CLI).
_NOT_FROM_THE_API = frozenset({errors.OutboxRowNotFound})


def _domain_errors(kind: type[errors.DomainError]) -> Iterator[type[errors.DomainError]]:
    yield kind
    for sub in kind.__subclasses__():
        yield from _domain_errors(sub)


# Every error_code the API can send: the domain errors (genesis/errors.py), aiohttp's own refusals
# (api/middlewares.py's table and its code for any other status).
ERROR_CODES: tuple[str, ...] = tuple(
    sorted(
        {kind.error_code for kind in _domain_errors(errors.DomainError) if kind not in _NOT_FROM_THE_API}
        | set(HTTP_CODES.values())
        | {HTTP_CODE_UNLISTED}
    )
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(status: int, description: str) -> dict[str, Any]:
    schema: dict[str, Any] = _ref("Error")
    if status == 409:
        schema = {"anyOf": [_ref("DuplicateCommandError"), _ref("Error")]}
    return _json(schema, description)


def _errors(*statuses: int) -> dict[str, Any]:
    names = {
        400: "Malformed JSON, or a header over its limit (HEADER_TOO_LARGE)",
        401: "Missing or invalid token",
        403: f"The token lacks the scope this route needs (FORBIDDEN; the agent routes need {AGENT_SCOPE!r})",
        404: "Not found (or not yours)",
        409: "Refused by the session's state",
        413: f"Body over {MAX_BODY_BYTES // 1024} KiB",
        415: "Body is not JSON",
        422: "Invalid request",
        429: "Too many open event streams for this user (TOO_MANY_STREAMS); see Retry-After",
        503: "Try again (see Retry-After when given)",
    }
    return {str(s): _error(s, names[s]) for s in statuses}


_SESSION_ID = {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_COMMAND_ID = {"name": "command_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_TASK_ID = {**_COMMAND_ID, "description": "The async command whose task this is"}
# W3C Trace Context: the caller's trace, continued by the API and stored with the events the request causes
# (sent as Kafka headers of their records). Without one the API starts a trace.
_TRACE_CONTEXT = [
    {
        "name": "traceparent",
        "in": "header",
        "description": "W3C traceparent, e.g. 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "schema": {"type": "string", "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"},
    },
    {"name": "tracestate", "in": "header", "description": "W3C tracestate", "schema": {"type": "string"}},
]
_AFTER = {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}}


def _schemas() -> dict[str, Any]:
    ts = {"type": "string", "format": "date-time"}
    stage = {"type": "string", "enum": list(typing.get_args(commands.Stage))}
    payloads = {name: model.model_json_schema(ref_template=_REF) for name, model in commands.PAYLOADS.items()}
    return {
        "Error": {
            "type": "object",
            "required": ["error_code", "message"],
            "properties": {
                "error_code": {"type": "string", "enum": list(ERROR_CODES)},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                "supported_command_types": {"type": "array", "items": {"type": "string"}},
            },
            "additionalProperties": True,
        },
        "DuplicateCommandError": {
            "type": "object",
            "required": ["error_code", "message", "duplicate_command_id"],
            "properties": {
                "error_code": {"const": errors.DuplicateCommand.error_code},
                "message": {"const": errors.DUPLICATE_MESSAGE},
                "duplicate_command_id": {"type": "string", "format": "uuid"},
            },
            "additionalProperties": False,
        },
        "Session": {
            "type": "object",
            "required": ["id", "user_id", "status", "stage", "stage_data", "version", "created_at", "updated_at"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "user_id": {"type": "string"},
                "status": {"type": "string", "enum": ["IN_PROGRESS", "COMPLETED", "ABANDONED"]},
                "stage": stage,
                "stage_data": {"type": "object"},
                "version": {"type": "integer", "minimum": 0},
                "created_at": ts,
                "updated_at": ts,
            },
        },
        **{f"{name}Payload": schema for name, schema in payloads.items()},
        "CommandRequest": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["command_type"],
                    "properties": {"command_type": {"const": name}, "payload": _ref(f"{name}Payload")},
                    "additionalProperties": False,
                }
                for name in commands.PAYLOADS
            ],
            "examples": [{"command_type": n, "payload": p} for n, p in commands.EXAMPLES.items()],
        },
        "CommandAccepted": {
            "type": "object",
            "required": ["command_id", "status", "message"],
            "properties": {
                "command_id": {"type": "string", "format": "uuid"},
                "status": {"const": "RECEIVED"},
                "message": {"type": "string"},
            },
        },
        "CommandCompleted": {
            "type": "object",
            "required": ["command_id", "status", "message", "event_ids", "session"],
            "properties": {
                "command_id": {"type": "string", "format": "uuid"},
                "status": {"const": "COMPLETED"},
                "message": {"type": "string"},
                "event_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
                "session": _ref("Session"),
            },
        },
        "Command": {
            "type": "object",
            "required": ["command_id", "session_id", "command_type", "status", "created_at", "updated_at"],
            "properties": {
                "command_id": {"type": "string", "format": "uuid"},
                "session_id": {"type": "string", "format": "uuid"},
                "command_type": {"type": "string"},
                "status": {"type": "string", "enum": ["RECEIVED", "PROCESSING", "COMPLETED", "FAILED"]},
                "payload": {"type": "object"},
                "result": {"type": ["object", "null"]},
                "error": {"type": ["string", "null"]},
                "created_at": ts,
                "updated_at": ts,
                "completed_at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
        "Event": {
            "type": "object",
            "required": ["sequence", "event_id", "event_type", "aggregate_id", "aggregate_version", "payload"],
            "properties": {
                "sequence": {"type": "integer"},
                "event_id": {"type": "string", "format": "uuid"},
                "correlation_id": {"type": ["string", "null"], "format": "uuid"},
                "causation_id": {"type": ["string", "null"], "format": "uuid"},
                "event_type": {"type": "string"},
                "event_version": {"type": "integer"},
                "aggregate_type": {"const": "GENESIS_SESSION"},
                "aggregate_id": {"type": "string", "format": "uuid"},
                "aggregate_version": {"type": "integer", "minimum": 1},
                "payload": {"type": "object"},
                "metadata": {
                    "type": "object",
                    "description": "user_id, source_service, request_id, timestamp; and the W3C `traceparent` / "
                    "`tracestate` of the request that caused the event, when it was traced",
                },
                "created_at": ts,
                "kafka": {
                    "description": "Where the event's record landed on Kafka, once the relay has sent it: "
                    "null before (and after its outbox row is pruned). In the events read and the stream's "
                    "replay; a live stream event is sent at commit, before it can have landed, so a client "
                    "that wants it reads `GET …/events?after=` again.",
                    "oneOf": [
                        {
                            "type": "object",
                            "required": ["partition", "offset"],
                            "properties": {
                                "partition": {"type": "integer", "minimum": 0},
                                "offset": {"type": "integer", "minimum": 0},
                            },
                        },
                        {"type": "null"},
                    ],
                },
            },
        },
        "EventPage": {
            "type": "object",
            "required": ["events", "next_after"],
            "properties": {"events": {"type": "array", "items": _ref("Event")}, "next_after": {"type": "integer"}},
        },
        **{name: model.model_json_schema(ref_template=_REF) for name, model in TASK_BODIES.items()},
        "TaskProgressRecorded": {
            "type": "object",
            "required": ["command_id", "command_status", "progress"],
            "properties": {
                "command_id": {"type": "string", "format": "uuid"},
                "command_status": {"const": "PROCESSING"},
                "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            },
        },
        "TaskSettled": {
            "type": "object",
            "required": ["command_id", "command_status", "event_id"],
            "properties": {
                "command_id": {"type": "string", "format": "uuid"},
                "command_status": {"type": "string", "enum": ["COMPLETED", "FAILED"]},
                "event_id": {"type": "string", "format": "uuid"},
            },
        },
        "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    }


@functools.cache
def document() -> dict[str, Any]:
    secured: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    text = {"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Genesis command service",
            "version": "1.0.0",
            "description": "Send a command, get 200/202/409; read what it caused.",
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": _schemas(),
        },
        "paths": {
            "/genesis/sessions": {
                "post": {
                    "operationId": "create_session",
                    "security": secured,
                    "parameters": _TRACE_CONTEXT,
                    "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"201": _json(_ref("Session"), "Session created"), **_errors(400, 401, 413, 415, 422)},
                }
            },
            "/genesis/sessions/{session_id}": {
                "get": {
                    "operationId": "get_session",
                    "security": secured,
                    "parameters": [_SESSION_ID],
                    "responses": {"200": _json(_ref("Session"), "The session"), **_errors(401, 404)},
                }
            },
            "/genesis/sessions/{session_id}/commands": {
                "post": {
                    "operationId": "submit_command",
                    "security": secured,
                    "parameters": [
                        _SESSION_ID,
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        },
                        *_TRACE_CONTEXT,
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("CommandRequest")}},
                    },
                    "responses": {
                        "200": _json(_ref("CommandCompleted"), "Synchronous command completed"),
                        "202": _json(_ref("CommandAccepted"), "Asynchronous command accepted; see Location"),
                        **_errors(400, 401, 404, 409, 413, 415, 422, 503),
                    },
                }
            },
            "/genesis/sessions/{session_id}/commands/{command_id}": {
                "get": {
                    "operationId": "get_command",
                    "security": secured,
                    "parameters": [_SESSION_ID, _COMMAND_ID],
                    "responses": {"200": _json(_ref("Command"), "The command's status"), **_errors(401, 404)},
                }
            },
            "/genesis/sessions/{session_id}/events": {
                "get": {
                    "operationId": "list_events",
                    "security": secured,
                    "parameters": [
                        _SESSION_ID,
                        _AFTER,
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                        },
                    ],
                    "responses": {"200": _json(_ref("EventPage"), "Events after `after`"), **_errors(401, 404, 422)},
                }
            },
            "/genesis/sessions/{session_id}/events/stream": {
                "get": {
                    "operationId": "stream_events",
                    "security": secured,
                    "parameters": [
                        _SESSION_ID,
                        _AFTER,
                        {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer", "minimum": 0}},
                    ],
                    "responses": {
                        "200": {
                            "description": "Server-Sent Events: `id: <sequence>`, `event: <event_type>`, "
                            "`data: <Event JSON>`; `: heartbeat` comments when idle; at the token's `exp` "
                            "`event: token-expired` and the end of the stream (resume with a fresh token and "
                            "Last-Event-ID)",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        **_errors(401, 404, 422, 429, 503),
                    },
                }
            },
            "/genesis/tasks/{command_id}/progress": {
                "post": {
                    "operationId": "report_progress",
                    "summary": f"An agent's progress on a task (scope {AGENT_SCOPE}); sent to the session's "
                    "streams as `event: task-progress`",
                    "security": secured,
                    "parameters": [_TASK_ID],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("TaskProgress")}},
                    },
                    "responses": {
                        "200": _json(_ref("TaskProgressRecorded"), "Recorded; the command is PROCESSING"),
                        **_errors(400, 401, 403, 404, 409, 413, 415, 422, 503),
                    },
                }
            },
            "/genesis/tasks/{command_id}/complete": {
                "post": {
                    "operationId": "complete_task",
                    "summary": f"An agent settles a task (scope {AGENT_SCOPE}); the same completion again "
                    "answers the same, a different one of a settled command is 409 COMMAND_NOT_PENDING",
                    "security": secured,
                    "parameters": [_TASK_ID],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("TaskCompletion")}},
                    },
                    "responses": {
                        "200": _json(_ref("TaskSettled"), "Settled; its result event goes through the outbox"),
                        **_errors(400, 401, 403, 404, 409, 413, 415, 422, 503),
                    },
                }
            },
            "/healthz": {"get": {"operationId": "healthz", "responses": {"200": _json(_ref("Health"), "Alive")}}},
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "responses": {"200": _json(_ref("Health"), "Ready"), "503": _json(_ref("Health"), "Not ready")},
                }
            },
            "/metrics": {"get": {"operationId": "metrics", "responses": {"200": text}}},
            "/openapi.json": {
                "get": {"operationId": "openapi", "responses": {"200": _json({"type": "object"}, "This")}}
            },
            "/docs": {"get": {"operationId": "docs", "responses": {"200": {"description": "HTML page"}}}},
            "/console": {
                "get": {"operationId": "console", "responses": {"200": {"description": "Developer console (HTML)"}}}
            },
        },
    }


@routes.get("/openapi.json", name="openapi")
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document())


@routes.get("/docs", name="docs")
async def docs(request: web.Request) -> web.Response:
    page = Path(__file__).with_name("static") / "docs.html"
    return web.Response(text=page.read_text(), content_type="text/html")
