"""The operations of the OpenAPI document (its `paths`): a summary, a description, the parameters, the request body
with an example per command type, and every status, content type and body each route answers (schemathesis checks
the API against them in tests/integration/api/test_api_fuzz.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from api.assets import MEDIA
from api.console import ASSETS as CONSOLE_ASSETS
from api.docs import ASSETS
from api.events import DEFAULT_LIMIT, MAX_LIMIT, MAX_SEQUENCE
from api.openapi_schemas import ref
from api.requests import _HEADER_TOKEN, MAX_BODY_BYTES, MAX_HEADER_TOKEN
from genesis import commands
from genesis.auth.tokens import AGENT_SCOPE

Operation = dict[str, Any]

SECURED: list[dict[str, list[str]]] = [{"bearerAuth": []}]
_REQUEST_ID = {
    "description": "The request's id: the client's X-Request-ID when it sent a valid one, else a new one",
    "schema": {"type": "string"},
}
_RETRY_AFTER = {"description": "Seconds to wait before trying again", "schema": {"type": "integer", "minimum": 1}}

_ERRORS = {
    400: (
        "Malformed JSON (INVALID_JSON), or a request the HTTP parser refuses: a header over its limit"
        " (HEADER_TOO_LARGE), an invalid character in the URL or a malformed head (BAD_REQUEST)"
    ),
    401: "Missing or invalid token (UNAUTHORIZED); see WWW-Authenticate",
    403: f"The token lacks the scope this route needs (FORBIDDEN; the agent routes need {AGENT_SCOPE!r})",
    404: "Not found, or not yours",
    409: "Refused by the session's or the command's state",
    413: f"Body over {MAX_BODY_BYTES // 1024} KiB (PAYLOAD_TOO_LARGE)",
    415: "Body is not JSON (UNSUPPORTED_MEDIA_TYPE)",
    422: "Invalid request (VALIDATION_ERROR and friends; `fields` names what is wrong), among them a string of the"
    " body holding NUL or an unpaired surrogate, which PostgreSQL's jsonb cannot store",
    429: "Too many open event streams for this user (TOO_MANY_STREAMS); see Retry-After",
    503: "The database is unavailable or busy, or the API holds as many streams as it may; try again",
}


def json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    answer["headers"] = {"X-Request-ID": _REQUEST_ID, **(headers or {})}
    return answer


def errors(*statuses: int) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for status in statuses:
        schema = {"anyOf": [ref("DuplicateCommandError"), ref("Error")]} if status == 409 else ref("Error")
        headers: dict[str, Any] = {}
        if status == 401:
            headers["WWW-Authenticate"] = {"description": "Bearer", "schema": {"type": "string"}}
        if status in (429, 503):
            headers["Retry-After"] = _RETRY_AFTER
        answers[str(status)] = json(schema, _ERRORS[status], headers)
    return answers


def _uuid(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"{description} (an id that is not a UUID is a 404, like an unknown one)",
        "schema": {"type": "string", "format": "uuid"},
    }


SESSION_ID = _uuid("session_id", "The session")
COMMAND_ID = _uuid("command_id", "The command")
TASK_ID = _uuid("command_id", "The async command whose task this is")
# W3C Trace Context: the caller's trace, continued by the API and stored with the events the request causes
# (sent as Kafka headers of their records). Without one the API starts a trace.
TRACE_CONTEXT = [
    {
        "name": "traceparent",
        "in": "header",
        "description": "W3C traceparent, e.g. 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01; a malformed "
        "value is ignored (as W3C Trace Context says), and the API starts a trace",
        "schema": {"type": "string"},
    },
    {"name": "tracestate", "in": "header", "description": "W3C tracestate", "schema": {"type": "string"}},
]
AFTER = {
    "name": "after",
    "in": "query",
    "description": "The sequence of the last event seen: only later events are sent",
    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SEQUENCE, "default": 0},
}


def _body(schema: dict[str, Any], *, required: bool, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if examples:
        media["examples"] = examples
    return {"required": required, "content": {"application/json": media}}


def _command_examples() -> dict[str, Any]:
    return {
        name: {
            "summary": f"{name} ({'async, 202' if name != 'ConfirmStage' else 'sync, 200'})",
            "description": commands.PAYLOADS[name].__doc__ or "",
            "value": {"command_type": name, "payload": example},
        }
        for name, example in commands.EXAMPLES.items()
    }


def sessions() -> dict[str, Any]:
    stream_description = (
        "Server-Sent Events: each event of the session as `id: <sequence>`, `event: <event_type>`, "
        "`data: <Event JSON>`, first those after `Last-Event-ID` (or `after`), then live; an agent's progress as "
        "`event: task-progress` with `data: {command_id, progress, message}` and no id; `: heartbeat` comments when "
        "idle; at the access token's `exp`, `event: token-expired` and the end of the stream (resume with a fresh "
        "token and the last id); `event: overflow` and the end when the client falls behind."
    )
    return {
        "/genesis/sessions": {
            "post": {
                "operationId": "create_session",
                "tags": ["Sessions"],
                "summary": "Create a session",
                "description": "A new session of the token's user, at CONCEPT_SELECTION; records "
                "Genesis.Session.Created. The body is optional (none is an empty object; one sent must be a JSON "
                "object).",
                "security": SECURED,
                "parameters": TRACE_CONTEXT,
                "requestBody": _body({"type": "object"}, required=False, examples={"empty": {"value": {}}}),
                "responses": {
                    "201": json(ref("Session"), "Session created", {"Location": _location("The session's URL")}),
                    **errors(400, 401, 413, 415, 422, 503),
                },
            }
        },
        "/genesis/sessions/{session_id}": {
            "get": {
                "operationId": "get_session",
                "tags": ["Sessions"],
                "summary": "Read a session",
                "description": "Its stage, version, confirmed data, and what is in flight (`is_pending`, "
                "`pending_commands`).",
                "security": SECURED,
                "parameters": [SESSION_ID],
                "responses": {"200": json(ref("Session"), "The session"), **errors(401, 404, 503)},
            }
        },
        "/genesis/sessions/{session_id}/commands": {
            "post": {
                "operationId": "submit_command",
                "tags": ["Commands"],
                "summary": "Send a command",
                "description": "Sync commands (ConfirmStage) answer 200 with the session; async ones 202 with "
                "the command's URL in Location. An equal command still RECEIVED or PROCESSING is 409 "
                "DUPLICATE_COMMAND with its id. The same Idempotency-Key again replays the first answer "
                "(Idempotent-Replayed: true); with a different command it is 422 IDEMPOTENCY_KEY_REUSED.",
                "security": SECURED,
                "parameters": [
                    SESSION_ID,
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "description": f"1-{MAX_HEADER_TOKEN} visible ASCII characters: the same key again replays "
                        "the first answer",
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_HEADER_TOKEN,
                            "pattern": _HEADER_TOKEN.pattern,
                        },
                    },
                    *TRACE_CONTEXT,
                ],
                "requestBody": _body(ref("CommandRequest"), required=True, examples=_command_examples()),
                "responses": {
                    "200": json(ref("CommandCompleted"), "Synchronous command completed", _replayed()),
                    "202": json(
                        ref("CommandAccepted"),
                        "Asynchronous command accepted",
                        {"Location": _location("The command's status URL"), **_replayed()},
                    ),
                    **errors(400, 401, 404, 409, 413, 415, 422, 503),
                },
            }
        },
        "/genesis/sessions/{session_id}/commands/{command_id}": {
            "get": {
                "operationId": "get_command",
                "tags": ["Commands"],
                "summary": "Read a command's status",
                "description": "RECEIVED, PROCESSING, COMPLETED or FAILED, with its result or error.",
                "security": SECURED,
                "parameters": [SESSION_ID, COMMAND_ID],
                "responses": {"200": json(ref("Command"), "The command"), **errors(401, 404, 503)},
            }
        },
        "/genesis/sessions/{session_id}/events": {
            "get": {
                "operationId": "list_events",
                "tags": ["Events"],
                "summary": "Read a session's events, a page at a time",
                "description": "In commit order; `next_after` is the `after` of the next page.",
                "security": SECURED,
                "parameters": [
                    SESSION_ID,
                    AFTER,
                    {
                        "name": "limit",
                        "in": "query",
                        "description": "At most this many events",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                    },
                ],
                "responses": {"200": json(ref("EventPage"), "Events after `after`"), **errors(401, 404, 422, 503)},
            }
        },
        "/genesis/sessions/{session_id}/events/stream": {
            "get": {
                "operationId": "stream_events",
                "tags": ["Events"],
                "summary": "Follow a session's events live (Server-Sent Events)",
                "description": "With `Authorization: Bearer`, or, for a browser's native EventSource (which "
                "cannot send that header), with `?stream_token=` from POST …/stream-tokens.",
                "security": [*SECURED, {"streamToken": []}],
                "parameters": [
                    SESSION_ID,
                    AFTER,
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "description": "The id of the last event seen (a reconnecting EventSource sends it); "
                        "wins over `after`",
                        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SEQUENCE},
                    },
                ],
                "responses": {
                    "200": {
                        "description": stream_description,
                        "headers": {"X-Request-ID": _REQUEST_ID},
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **errors(401, 404, 422, 429, 503),
                },
            }
        },
        "/genesis/sessions/{session_id}/stream-tokens": {
            "post": {
                "operationId": "create_stream_token",
                "tags": ["Events"],
                "summary": "Get a stream token for EventSource",
                "description": "A short-lived token for `?stream_token=` on the session's event stream: bound "
                "to this user and session, good for opening a stream until `expires_at` (STREAM_TOKEN_TTL, 60 s); "
                "the stream it opens ends when the access token it came from expires. It is no bearer token.",
                "security": SECURED,
                "parameters": [SESSION_ID],
                "responses": {
                    "201": json(ref("StreamToken"), "A stream token", {"Cache-Control": _text("no-store")}),
                    **errors(401, 404, 503),
                },
            }
        },
    }


def tasks() -> dict[str, Any]:
    return {
        "/genesis/tasks/{command_id}/progress": {
            "post": {
                "operationId": "report_progress",
                "tags": ["Agents"],
                "summary": "Report progress on a task",
                "description": f"For agents (scope {AGENT_SCOPE}): updates the task and reaches the session's "
                "streams as `event: task-progress`; not a domain event.",
                "security": SECURED,
                "parameters": [TASK_ID],
                "requestBody": _body(ref("TaskProgress"), required=True),
                "responses": {
                    "200": json(ref("TaskProgressRecorded"), "Recorded; the command is PROCESSING"),
                    **errors(400, 401, 403, 404, 409, 413, 415, 422, 503),
                },
            }
        },
        "/genesis/tasks/{command_id}/complete": {
            "post": {
                "operationId": "complete_task",
                "tags": ["Agents"],
                "summary": "Settle a task",
                "description": f"For agents (scope {AGENT_SCOPE}): COMPLETED or FAILED with its result; the result "
                "event goes through the outbox. The same completion again answers the same; a different one of a "
                "settled command is 409 COMMAND_NOT_PENDING.",
                "security": SECURED,
                "parameters": [TASK_ID],
                "requestBody": _body(ref("TaskCompletion"), required=True),
                "responses": {
                    "200": json(ref("TaskSettled"), "Settled"),
                    **errors(400, 401, 403, 404, 409, 413, 415, 422, 503),
                },
            }
        },
    }


def service() -> dict[str, Any]:
    def page(operation_id: str, summary: str, media: str, tag: str = "Service") -> dict[str, Any]:
        content = {media: {"schema": {"type": "string"}}}
        return {
            "get": {
                "operationId": operation_id,
                "tags": [tag],
                "summary": summary,
                "responses": {
                    "200": {"description": summary, "headers": {"X-Request-ID": _REQUEST_ID}, "content": content}
                },
            }
        }

    return {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "tags": ["Service"],
                "summary": "Liveness: the process answers",
                "responses": {"200": json(ref("Health"), "Alive")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "tags": ["Service"],
                "summary": "Readiness: the database answers",
                "responses": {"200": json(ref("Health"), "Ready"), "503": json(ref("Health"), "Not ready")},
            }
        },
        "/metrics": page("metrics", "Prometheus metrics (text exposition format)", "text/plain"),
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "tags": ["Service"],
                "summary": "This document (OpenAPI 3.1)",
                "responses": {"200": json({"type": "object"}, "The OpenAPI document")},
            }
        },
        "/asyncapi.json": {
            "get": {
                "operationId": "asyncapi",
                "tags": ["Service"],
                "summary": "The AsyncAPI 3.0 description of the Kafka topic agents consume",
                "responses": {"200": json({"type": "object"}, "The AsyncAPI 3.0 document")},
            }
        },
        "/docs": page("docs", "This document, rendered (Swagger UI)", "text/html"),
        "/docs/static/{name}": _asset_files(
            "docs_static", "A file of the /docs page (Swagger UI's, from the swagger-ui-py package)", ASSETS
        ),
        "/console": page("console", "The developer console (HTML)", "text/html"),
        "/console/static/{name}": _asset_files("console_static", "A file of the /console page", CONSOLE_ASSETS),
    }


def _asset_files(operation_id: str, summary: str, assets: Mapping[str, Path]) -> dict[str, Any]:
    """A page's files, each whole (api/assets.py: never a range or a 304), or a 404."""
    name = {"type": "string", "enum": sorted(assets)}
    content = {media: {"schema": {"type": "string"}} for media in sorted({MEDIA[p.suffix] for p in assets.values()})}
    return {
        "get": {
            "operationId": operation_id,
            "tags": ["Service"],
            "summary": summary,
            "parameters": [{"name": "name", "in": "path", "required": True, "description": "One file", "schema": name}],
            "responses": {"200": {"description": "The file", "content": content}, **errors(404)},
        }
    }


def _location(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


def _replayed() -> dict[str, Any]:
    return {"Idempotent-Replayed": _text("true", "Present when the answer replays an earlier one (Idempotency-Key)")}


def _text(value: str, description: str = "") -> dict[str, Any]:
    return {"description": description or value, "schema": {"type": "string", "enum": [value]}}
