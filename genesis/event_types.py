"""Every event type the service records, in the order a session meets them: what an event stream can send as
`event: <event_type>` (CONTRACT §5). A browser's EventSource delivers a named event only to a listener of that name,
so the OpenAPI document lists them (the Event schema's `event_type` enum), and the console and the TypeScript
client listen for each.

The SQL functions name them (the command catalogue and the few recorded outside it); tests/unit/test_event_types.py
reads every event type literal in sql/functions and keeps this list equal to them.
"""

from __future__ import annotations

EVENT_TYPES: tuple[str, ...] = (
    "Genesis.Session.Created",
    "Genesis.Session.ConceptGenerationRequested",
    "Genesis.Session.ConceptProposed",
    "Genesis.Session.ConceptGenerationFailed",
    "Genesis.Session.FeedbackSubmitted",
    "Genesis.Session.ContentRevised",
    "Genesis.Session.FeedbackFailed",
    "Genesis.Session.StageConfirmed",
    "Genesis.Session.Finished",
    "Genesis.Session.CommandFailed",
)

# Frames of an event stream that are not domain events (no `id`): an agent's progress, and why the server ends it.
STREAM_SIGNALS: tuple[str, ...] = ("task-progress", "token-expired", "overflow")
