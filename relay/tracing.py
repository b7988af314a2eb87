"""The relay's spans: one PRODUCER span `send {topic}` per published record, in the trace of the
request that caused its event (the trace context stored in its outbox headers), with the messaging
semantic conventions' attributes. Built only when this process exports spans."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentelemetry import propagate, trace
from opentelemetry.semconv._incubating.attributes import messaging_attributes as msg
from opentelemetry.trace import Link, SpanKind

from genesis.telemetry import tracing

if TYPE_CHECKING:
    from relay.publisher import Landing, OutboxRow

tracer = trace.get_tracer(__name__)

_TRACE_HEADERS = ("traceparent", "tracestate")


def record_sends(sent: Sequence[tuple[OutboxRow, Landing]], batch_size: int, started_ns: int) -> None:
    """Spans for the rows of one publish (of `batch_size` rows) the broker acknowledged, and where."""
    if not tracing.exporting() or not sent:
        return
    ended_ns = time.time_ns()
    for row, where in sent:
        headers = {k: v.decode() for k, v in row.headers if k in _TRACE_HEADERS or k == "event_id"}
        stored = propagate.extract(headers)
        creator = trace.get_current_span(stored).get_span_context()
        attributes: dict[str, str | int] = {
            msg.MESSAGING_SYSTEM: "kafka",
            msg.MESSAGING_OPERATION_TYPE: "send",
            msg.MESSAGING_OPERATION_NAME: "send",
            msg.MESSAGING_DESTINATION_NAME: row.topic,
            msg.MESSAGING_DESTINATION_PARTITION_ID: str(where.partition),
            msg.MESSAGING_KAFKA_MESSAGE_KEY: row.key,
            msg.MESSAGING_MESSAGE_ID: headers.get("event_id", ""),
            msg.MESSAGING_BATCH_MESSAGE_COUNT: batch_size,
        }
        if where.offset is not None:
            attributes[msg.MESSAGING_KAFKA_OFFSET] = where.offset
        span = tracer.start_span(
            f"send {row.topic}",
            context=stored,  # the parent: the API request's span
            kind=SpanKind.PRODUCER,
            links=[Link(creator)] if creator.is_valid else None,
            start_time=started_ns,
            attributes=attributes,
        )
        span.end(end_time=ended_ns)
