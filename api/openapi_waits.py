"""The OpenAPI part of waiting for the user (issue 25, CONTRACT §9): the agents' wait route, the handle it answers
and the session's `waiting` entries. Apart from api/openapi_paths.py and api/openapi_schemas.py to keep both short."""

from __future__ import annotations

from typing import Any

from api.openapi_paths import SECURED, TASK_ID, errors, json
from api.openapi_schemas import ref
from genesis import commands
from genesis.auth.tokens import AGENT_SCOPE

_UUID = {"type": "string", "format": "uuid"}
_STATUS = {"type": "string", "enum": ["PENDING_PAUSE", "PAUSED", "RESUMED", "EXPIRED"]}
_TS = {"type": "string", "format": "date-time"}
_COMMAND_TYPE = {"type": "string", "enum": [*commands.PAYLOADS]}
_HANDLE_FIELDS = (
    "handle_id", "correlation_id", "session_id", "status", "expects", "timeout_seconds", "expires_at",
    "resume_handle", "resume_payload", "resumed_by", "resumed_at",
)  # fmt: skip


def wait_paths() -> dict[str, Any]:
    return {
        "/genesis/tasks/{command_id}/wait": {
            "post": {
                "operationId": "wait_for_user",
                "tags": ["Agents"],
                "summary": "Park the task's flow until the user answers",
                "description": f"For agents (scope {AGENT_SCOPE}): the user's next command of a type in `expects` "
                "in this session resumes the flow: its event carries `metadata.resumes = {handle_id, "
                "correlation_id, resume_handle}`. If such a command came after this command and before the park, "
                "the handle is created RESUMED by it. The same request again answers the same; a different one "
                "while the flow waits is 409 ALREADY_WAITING, and a new handle on a session no longer IN_PROGRESS 409 "
                "SESSION_CLOSED. Unresumed by `expires_at`: EXPIRED, with a "
                "`Genesis.Session.Flow.Failed` event.",
                "security": SECURED,
                "parameters": [TASK_ID],
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref("TaskWait")}}},
                "responses": {
                    "201": json(ref("FlowHandle"), "The flow's handle (PAUSED, or RESUMED already)"),
                    **errors(400, 401, 403, 404, 409, 413, 415, 422, 503),
                },
            }
        }
    }


def wait_schemas() -> dict[str, Any]:
    return {
        "FlowHandle": {
            "type": "object",
            "required": [*_HANDLE_FIELDS],
            "properties": {
                "handle_id": _UUID,
                "correlation_id": {**_UUID, "description": "The command whose flow waits"},
                "session_id": _UUID,
                "status": _STATUS,
                "expects": {"type": "array", "items": _COMMAND_TYPE},
                "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 604800},
                "expires_at": _TS,
                "resume_handle": {"type": "object"},
                "resume_payload": {"type": ["object", "null"], "description": "The resuming command's payload"},
                "resumed_by": {"type": ["string", "null"], "format": "uuid", "description": "The resuming command"},
                "resumed_at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
        "WaitingFlow": {
            "type": "object",
            "required": ["handle_id", "correlation_id", "expects", "expires_at", "status"],
            "properties": {
                "handle_id": _UUID,
                "correlation_id": _UUID,
                "expects": {"type": "array", "items": _COMMAND_TYPE},
                "expires_at": _TS,
                "status": {"type": "string", "enum": ["PENDING_PAUSE", "PAUSED"]},
            },
        },
    }
