"""The OpenAPI 3.1 description of the API (GET /openapi.json) and a self-contained /docs page."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from aiohttp import web

from api.events import DEFAULT_LIMIT, MAX_LIMIT
from api.openapi_schemas import ref, schemas
from api.requests import MAX_BODY_BYTES
from genesis.auth.tokens import AGENT_SCOPE

routes = web.RouteTableDef()


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(status: int, description: str) -> dict[str, Any]:
    schema: dict[str, Any] = ref("Error")
    if status == 409:
        schema = {"anyOf": [ref("DuplicateCommandError"), ref("Error")]}
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
            "schemas": schemas(),
        },
        "paths": {
            "/genesis/sessions": {
                "post": {
                    "operationId": "create_session",
                    "security": secured,
                    "parameters": _TRACE_CONTEXT,
                    "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"201": _json(ref("Session"), "Session created"), **_errors(400, 401, 413, 415, 422)},
                }
            },
            "/genesis/sessions/{session_id}": {
                "get": {
                    "operationId": "get_session",
                    "security": secured,
                    "parameters": [_SESSION_ID],
                    "responses": {"200": _json(ref("Session"), "The session"), **_errors(401, 404)},
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
                        "content": {"application/json": {"schema": ref("CommandRequest")}},
                    },
                    "responses": {
                        "200": _json(ref("CommandCompleted"), "Synchronous command completed"),
                        "202": _json(ref("CommandAccepted"), "Asynchronous command accepted; see Location"),
                        **_errors(400, 401, 404, 409, 413, 415, 422, 503),
                    },
                }
            },
            "/genesis/sessions/{session_id}/commands/{command_id}": {
                "get": {
                    "operationId": "get_command",
                    "security": secured,
                    "parameters": [_SESSION_ID, _COMMAND_ID],
                    "responses": {"200": _json(ref("Command"), "The command's status"), **_errors(401, 404)},
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
                    "responses": {"200": _json(ref("EventPage"), "Events after `after`"), **_errors(401, 404, 422)},
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
                        "content": {"application/json": {"schema": ref("TaskProgress")}},
                    },
                    "responses": {
                        "200": _json(ref("TaskProgressRecorded"), "Recorded; the command is PROCESSING"),
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
                        "content": {"application/json": {"schema": ref("TaskCompletion")}},
                    },
                    "responses": {
                        "200": _json(ref("TaskSettled"), "Settled; its result event goes through the outbox"),
                        **_errors(400, 401, 403, 404, 409, 413, 415, 422, 503),
                    },
                }
            },
            "/healthz": {"get": {"operationId": "healthz", "responses": {"200": _json(ref("Health"), "Alive")}}},
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "responses": {"200": _json(ref("Health"), "Ready"), "503": _json(ref("Health"), "Not ready")},
                }
            },
            "/metrics": {"get": {"operationId": "metrics", "responses": {"200": text}}},
            "/openapi.json": {
                "get": {"operationId": "openapi", "responses": {"200": _json({"type": "object"}, "This")}}
            },
            "/asyncapi.json": {
                "get": {
                    "operationId": "asyncapi",
                    "summary": "The AsyncAPI 3.0 description of the Kafka topic agents consume",
                    "responses": {"200": _json({"type": "object"}, "AsyncAPI 3.0 document")},
                }
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
