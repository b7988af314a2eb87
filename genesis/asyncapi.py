"""The AsyncAPI 3.0 description of the topic the relay publishes (CONTRACT §6): what agents consume.

Generated, never written by hand: the event types from the SQL command catalogue (genesis/sql_catalogue.py) and
genesis/events.py, their payloads from the models in genesis/commands.py and genesis/events.py, the headers from
what genesis_event_headers (SQL) builds. The API serves it at /asyncapi.json for its own KAFKA_TOPIC and
CLOUDEVENTS_SOURCE; docs/asyncapi.json is the copy with the defaults, rewritten by `python -m genesis.asyncapi`
(a test fails when it differs).
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import pydantic

from genesis import commands, events
from genesis.settings import Settings
from genesis.sql_catalogue import command_catalogue

Schema = dict[str, Any]

COMMITTED = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"
CHANNEL = "domainEvents"
KAFKA_BINDING = "0.5.0"
UUID: Schema = {
    "type": "string",
    "format": "uuid",
    "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
}
_DEFAULTS = Settings()


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _messages() -> dict[str, tuple[Schema, str]]:
    """Event type → (its payload's schema, how the event comes about), the catalogue's events first."""
    found: dict[str, tuple[Schema, str]] = {}
    settled = events.CommandSettled.__name__
    for row in command_catalogue():
        command = str(row["command_type"])
        model = events.COMMAND_EVENT_PAYLOADS.get(command, commands.PAYLOADS[command])
        mode = "async: answered 202, settled later by an agent" if row["is_async"] else "sync: answered 200"
        found[str(row["event_type"])] = (_ref(model.__name__), f"{command} was recorded ({mode}).")
        for column, outcome in (("completed_event", "COMPLETED"), ("failed_event", "FAILED")):
            if row[column] is not None:
                schema = {"allOf": [_ref(settled), {"properties": {"command_type": {"const": command}}}]}
                found[str(row[column])] = (schema, f"An agent settled {command} as {outcome}.")
    for event_type, model in events.SESSION_EVENTS.items():
        found[event_type] = (_ref(model.__name__), _doc(model))
    return found


def _doc(model: type[pydantic.BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def _payload_models() -> list[type[pydantic.BaseModel]]:
    return [
        *commands.PAYLOADS.values(),
        *events.COMMAND_EVENT_PAYLOADS.values(),
        events.CommandSettled,
        *events.SESSION_EVENTS.values(),
    ]


def _headers(source: str) -> Schema:
    """The record's headers as genesis_event_headers builds them (Kafka header values are bytes: UTF-8 here)."""
    optional_uuid = {"type": "string", "pattern": "^$|" + UUID["pattern"], "description": "empty when there is none"}
    properties: Schema = {
        "event_id": {**UUID, "description": "Dedupe on it (= ce_id)"},
        "event_type": {"type": "string", "pattern": events.EVENT_TYPE_PATTERN},
        "correlation_id": {**UUID, "description": "The command that caused the event"},
        "causation_id": {**optional_uuid, "description": "The session's previous event; empty for its first"},
        "ce_specversion": {"const": "1.0", "description": "CloudEvents 1.0, Kafka protocol binding, binary mode"},
        "ce_id": {**UUID, "description": "= event_id"},
        "ce_source": {"type": "string", "default": source, "description": "CLOUDEVENTS_SOURCE"},
        "ce_type": {"type": "string", "description": "= event_type"},
        "ce_subject": {**UUID, "description": "The session id (= the record key)"},
        "ce_time": {
            "type": "string",
            "format": "date-time",
            "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$",
            "description": "The event's created_at, RFC 3339 in UTC",
        },
        "content-type": {"const": "application/json"},
        "traceparent": {
            "type": "string",
            "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            "description": "W3C Trace Context of the request that caused the event (absent without one)",
        },
        "tracestate": {"type": "string", "description": "W3C tracestate, when the request sent one"},
    }
    optional = ("traceparent", "tracestate")
    required = [name for name in properties if name not in optional]
    return {"type": "object", "required": required, "additionalProperties": False, "properties": properties}


def _envelope() -> Schema:
    """The record's value: the event as genesis_event_json builds it (also the events API's and SSE's data)."""
    properties: Schema = {
        "sequence": {"type": "integer", "minimum": 1, "description": "Global commit order (Last-Event-ID)"},
        "event_id": UUID,
        "correlation_id": {**UUID, "description": "The command that caused the event"},
        "causation_id": {"oneOf": [UUID, {"type": "null"}], "description": "The session's previous event"},
        "event_type": {"type": "string", "pattern": events.EVENT_TYPE_PATTERN},
        "event_version": {"type": "integer", "minimum": 1},
        "aggregate_type": {"const": "GENESIS_SESSION"},
        "aggregate_id": {**UUID, "description": "The session id (= the record key)"},
        "aggregate_version": {
            "type": "integer",
            "minimum": 1,
            "description": "1, 2, 3… per session: a gap is a missing event, a repeat a redelivery",
        },
        "payload": {"type": "object"},
        "metadata": _ref("EventMetadata"),
        "created_at": {"type": "string", "format": "date-time"},
    }
    return {"type": "object", "required": list(properties), "additionalProperties": False, "properties": properties}


def _metadata() -> Schema:
    return {
        "type": "object",
        "required": ["user_id", "source_service", "request_id", "timestamp"],
        "properties": {
            "user_id": {"type": "string", "description": "The session's owner (the token's sub)"},
            "source_service": {"type": "string", "description": "genesis-api, genesis-relay, … or sql from psql"},
            "request_id": {"type": ["string", "null"], "description": "X-Request-ID of the request"},
            "timestamp": {"type": "string", "format": "date-time"},
            "traceparent": {"type": "string"},
            "tracestate": {"type": "string"},
            "resumes": {
                "type": "object",
                "description": "On the event of a command that resumed a flow waiting for the user (issue 25)",
                "required": ["handle_id", "correlation_id", "resume_handle"],
                "properties": {
                    "handle_id": {"type": "string", "format": "uuid"},
                    "correlation_id": {"type": "string", "format": "uuid", "description": "The flow's command"},
                    "resume_handle": {"type": "object", "description": "What the flow parked with"},
                },
            },
        },
    }


@functools.cache
def document(topic: str = _DEFAULTS.kafka_topic, source: str = _DEFAULTS.cloudevents_source) -> dict[str, Any]:
    messages: dict[str, Any] = {}
    for event_type, (payload, how) in _messages().items():
        messages[event_type] = {
            "name": event_type,
            "title": event_type,
            "summary": how,
            "contentType": "application/json",
            "correlationId": {"location": "$message.header#/correlation_id"},
            "headers": {
                "type": "object",
                "allOf": [_ref("RecordHeaders")],
                "properties": {"event_type": {"const": event_type}, "ce_type": {"const": event_type}},
            },
            "payload": {
                "allOf": [
                    _ref("DomainEvent"),
                    {"properties": {"event_type": {"const": event_type}, "payload": payload}},
                ]
            },
            "bindings": {"kafka": {"key": {**UUID, "description": "The session id"}, "bindingVersion": KAFKA_BINDING}},
        }
    schemas: dict[str, Schema] = {
        "RecordHeaders": _headers(source),
        "DomainEvent": _envelope(),
        "EventMetadata": _metadata(),
    }
    for model in _payload_models():
        schema = model.model_json_schema()
        schema.pop("title", None)
        schemas[model.__name__] = schema
    channel_messages = {name: {"$ref": f"#/components/messages/{name}"} for name in messages}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Genesis domain events",
            "version": "1.0.0",
            "description": (
                "Every committed domain event of a Genesis session, published by the message relay at least "
                "once, in commit order per session (the key). Dedupe on `event_id`. Each record is also a "
                "CloudEvents 1.0 event in the Kafka binding's binary mode: the value is the event JSON, the "
                "attributes are `ce_*` headers. Agents report back over HTTP (see /openapi.json)."
            ),
        },
        "defaultContentType": "application/json",
        "channels": {
            CHANNEL: {
                "address": topic,
                "title": "Domain events (KAFKA_TOPIC)",
                "description": "Keyed by session id: a session's events are on one partition, in order.",
                "messages": channel_messages,
                "bindings": {"kafka": {"topic": topic, "bindingVersion": KAFKA_BINDING}},
            }
        },
        "operations": {
            "publishDomainEvents": {
                "action": "send",
                "title": "The relay publishes each committed event",
                "channel": {"$ref": f"#/channels/{CHANNEL}"},
                "messages": [{"$ref": f"#/channels/{CHANNEL}/messages/{name}"} for name in messages],
            }
        },
        "components": {"messages": messages, "schemas": schemas},
    }


def text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    """`python -m genesis.asyncapi` rewrites docs/asyncapi.json; with --check, only says whether it is current."""
    wanted = text(document())
    if "--check" in sys.argv[1:]:
        current = COMMITTED.read_text() if COMMITTED.exists() else ""
        print(f"{COMMITTED} is {'current' if current == wanted else 'out of date: run python -m genesis.asyncapi'}")
        return 0 if current == wanted else 1
    COMMITTED.write_text(wanted)
    print(f"wrote {COMMITTED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
