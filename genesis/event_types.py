"""Every event type the service records, in the order a session meets them: what an event stream can send as
`event: <event_type>` (CONTRACT §5). A browser's EventSource delivers a named event only to a listener of that name,
so the OpenAPI document lists them (the Event schema's `event_type` enum), and the console and the TypeScript
client listen for each.

Derived, not written again: the command catalogue's events come from its SQL source (genesis/sql_catalogue.py),
the others from genesis/events.py's SESSION_EVENTS, the same two places the AsyncAPI document reads.
tests/unit/test_event_types.py holds the result equal to every event type literal in sql/functions.
"""

from __future__ import annotations

from genesis.events import SESSION_EVENTS
from genesis.sql_catalogue import command_catalogue

_CREATED = "Genesis.Session.Created"


def _in_order() -> tuple[str, ...]:
    catalogue = [
        str(row[column])
        for row in command_catalogue()
        for column in ("event_type", "completed_event", "failed_event")
        if row[column] is not None
    ]
    return (_CREATED, *catalogue, *(t for t in SESSION_EVENTS if t != _CREATED))


EVENT_TYPES: tuple[str, ...] = _in_order()

# Frames of an event stream that are not domain events (no `id`): an agent's progress, and why the server ends it.
STREAM_SIGNALS: tuple[str, ...] = ("task-progress", "token-expired", "overflow")
