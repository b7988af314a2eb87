"""The schemas of the OpenAPI document (components/schemas) and every error code the API can send."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

from api.middlewares import HTTP_CODE_UNLISTED, HTTP_CODES
from api.tasks import BODIES as TASK_BODIES
from genesis import commands, errors
from genesis.event_types import EVENT_TYPES

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


# Every field of the session JSON (sql/functions/genesis_session_json.sql).
_SESSION_FIELDS = (
    "id", "user_id", "status", "stage", "stage_data", "version", "created_at", "updated_at", "is_pending",
    "pending_commands", "waiting",
)  # fmt: skip


def ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def schemas() -> dict[str, Any]:
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
            "required": [*_SESSION_FIELDS],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "user_id": {"type": "string"},
                "status": {"type": "string", "enum": ["IN_PROGRESS", "COMPLETED", "ABANDONED"]},
                "stage": stage,
                "stage_data": {"type": "object", "description": "The data confirmed at each stage, by stage"},
                "version": {"type": "integer", "minimum": 0},
                "created_at": ts,
                "updated_at": ts,
                "is_pending": {
                    "type": "boolean",
                    "description": "Whether any command of the session is in flight (RECEIVED or PROCESSING)",
                },
                "pending_commands": {
                    "type": "array",
                    "description": "The commands in flight, oldest first",
                    "items": ref("PendingCommand"),
                },
                "waiting": {
                    "type": "array",
                    "description": "The flows waiting for the user's answer (open resume handles), oldest first",
                    "items": ref("WaitingFlow"),
                },
            },
        },
        "PendingCommand": {
            "type": "object",
            "required": ["id", "type"],
            "properties": {"id": {"type": "string", "format": "uuid"}, "type": {"type": "string"}},
        },
        **{f"{name}Payload": schema for name, schema in payloads.items()},
        "CommandRequest": {
            "oneOf": [
                {
                    "type": "object",
                    # An absent payload is `{}`: required where that is not a valid payload.
                    "required": ["command_type", "payload"] if schema.get("required") else ["command_type"],
                    "properties": {"command_type": {"const": name}, "payload": ref(f"{name}Payload")},
                    "additionalProperties": False,
                }
                for name, schema in payloads.items()
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
                "session": ref("Session"),
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
                "event_type": {
                    "type": "string",
                    "enum": list(EVENT_TYPES),
                    "description": "Also the stream's `event:` name (an EventSource listens for each by name)",
                },
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
            "properties": {"events": {"type": "array", "items": ref("Event")}, "next_after": {"type": "integer"}},
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
        "StreamToken": {
            "type": "object",
            "required": ["stream_token", "expires_at"],
            "properties": {
                "stream_token": {"type": "string", "description": "For ?stream_token= on the session's event stream"},
                "expires_at": {"type": "string", "format": "date-time", "description": "A stream opens until then"},
            },
            "additionalProperties": False,
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "checks": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    }
