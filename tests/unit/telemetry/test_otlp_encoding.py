"""genesis.telemetry.otlp_encoding writes the same OTLP request as the SDK's own encoder, field for field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from genesis.telemetry import otlp_encoding

REMOTE = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                     trace_flags=TraceFlags(1), trace_state=TraceState([("genesis", "test"), ("a", "1")]))  # fmt: skip


def _recorded(**limits: int) -> list[ReadableSpan]:
    """Spans from a real provider: every kind, a remote parent with a trace state, events, links, statuses."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "genesis-test"}),
                              span_limits=SpanLimits(**limits))  # fmt: skip
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.server", "1.2", schema_url="https://opentelemetry.io/schemas/1.30.0")
    other = provider.get_tracer("tests.db", attributes={"scope.attr": "x"})
    values: dict[str, Any] = {"s": "POST /x", "empty": "", "i": 202, "zero": 0, "neg": -7, "big": 2**63 - 1,
                              "t": True, "f": False, "pi": 3.25, "strs": ("a", "b"), "ints": (1, -2),
                              "bools": (True, False), "floats": (0.5,)}  # fmt: skip
    with tracer.start_as_current_span("server", context=set_span_in_context(NonRecordingSpan(REMOTE)),
                                      kind=SpanKind.SERVER, attributes=values) as server:  # fmt: skip
        server.add_event("retry", {"attempt": 2, "why": "serialization"})
        server.add_event("bare")
        with other.start_as_current_span("db", kind=SpanKind.CLIENT, attributes={"db.system.name": "postgresql"}):
            pass
        server.set_status(Status(StatusCode.ERROR, "boom"))
    ok = tracer.start_span(
        "ok", kind=SpanKind.PRODUCER, links=[Link(REMOTE, {"l": 1}), Link(server.get_span_context())]
    )
    ok.set_status(Status(StatusCode.OK))
    ok.end()
    for kind in (SpanKind.INTERNAL, SpanKind.CONSUMER):
        tracer.start_span(kind.name, kind=kind).end()
    return list(exporter.get_finished_spans())


def _by_hand() -> list[ReadableSpan]:
    """What a real provider would not let through: bytes, mappings, None, an int beyond int64; no times."""
    context = SpanContext(1, 2, is_remote=False)
    attributes: dict[str, Any] = {
        "b": b"\x00\xff",
        "m": {"k": "v", "n": {"x": 1.5}},
        "none": None,
        "huge": 2**70,
        "ok": "kept",
    }
    return [
        ReadableSpan(
            "by hand",
            context,
            attributes=attributes,
            resource=Resource({}, "https://schema"),
            instrumentation_scope=InstrumentationScope("hand"),
            events=[Event("e", timestamp=0)],
        ),
        ReadableSpan("no scope", context, parent=REMOTE, resource=Resource({}), instrumentation_scope=None),
    ]


def _assert_same(spans: Sequence[ReadableSpan]) -> None:
    ours = otlp_encoding.encode_request(spans)
    theirs = encode_spans(spans)
    assert ExportTraceServiceRequest.FromString(ours) == theirs
    assert ours == theirs.SerializeToString()  # in field-number order, as protobuf writes it


def test_recorded_spans_encode_as_the_sdk_encodes_them() -> None:
    spans = _recorded()
    assert {s.kind for s in spans} == set(SpanKind)
    _assert_same(spans)
    _assert_same(spans)  # again, from the cached attributes


def test_dropped_counts_are_kept() -> None:
    spans = _recorded(max_attributes=2, max_events=1, max_links=1, max_event_attributes=1, max_link_attributes=0)
    assert any(s.dropped_attributes and s.dropped_events for s in spans)
    assert any(s.dropped_links for s in spans)
    _assert_same(spans)


def test_every_value_type_and_missing_field_encodes_as_the_sdk_encodes_it() -> None:
    _assert_same(_by_hand())


def test_the_attribute_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp_encoding, "_MAX_CACHED", 3)
    monkeypatch.setattr(otlp_encoding, "_cached", {})
    spans = _recorded()
    _assert_same(spans)
    assert len(otlp_encoding._cached) <= 3
