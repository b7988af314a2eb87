"""Finished SDK spans as an OTLP `ExportTraceServiceRequest` (protobuf wire format), written directly.

Why not the exporter's own encoder: it builds a protobuf message per attribute, copies each up through its
span, scope and resource, then serializes the lot: ~45 µs a span on the benchmark's spans, in the export
thread, holding the GIL that the API's event loop waits for (docs/benchmarks.md, Tracing). Most attributes
repeat from span to span (the route, the method, the query, the server), so here each (key, value) pair is
encoded once and its bytes reused; the rest is a few byte strings joined per span (~5 µs).

The output is the same message as the SDK's `encode_spans` (tests/unit/telemetry/test_otlp_encoding.py compares them,
decoded with opentelemetry-proto, for every kind of field), so nothing downstream can tell them apart.
Field numbers: opentelemetry-proto's trace.proto, common.proto and resource.proto.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind

_KIND = {kind: b"\x30" + bytes((kind.value + 1,)) for kind in SpanKind}  # the proto's enum counts from UNSPECIFIED
# Span.flags as the SDK's encoder sets them: "has is_remote" always, "is remote" for a remote parent (or link).
_LOCAL, _REMOTE = struct.pack("<I", 0x100), struct.pack("<I", 0x300)
_FLAGS_LOCAL, _FLAGS_REMOTE = b"\x85\x01" + _LOCAL, b"\x85\x01" + _REMOTE
_fixed64 = struct.Struct("<Q").pack
_double = struct.Struct("<d").pack

# (key, value) → the KeyValue's bytes with its tag; cleared when full, so unique values (a URL path per
# request) cannot grow it without bound. Only str and int values: 1 == 1.0 == True would share an entry.
_MAX_CACHED = 4096
_cached: dict[tuple[str, object], bytes] = {}
_names: dict[str, bytes] = {}  # span names: one per route and query
_INT64 = range(-(1 << 63), 1 << 63)
log = logging.getLogger(__name__)


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64: two's complement, ten bytes
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag byte(s), the length, the payload."""
    return tag + _varint(len(payload)) + payload


def _string(tag: bytes, text: str | None) -> bytes:
    return _field(tag, text.encode()) if text else b""  # proto3: an empty string is not written


def _any_value(value: Any) -> bytes:
    """An AnyValue's payload (the SDK's `_encode_value`, type for type)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, int):
        if value not in _INT64:
            raise ValueError(f"{value} does not fit an int64")
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _double(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return _field(b"\x32", b"".join(_key_value(b"\x0a", str(k), v) for k, v in value.items()))
    raise TypeError(f"an attribute value of type {type(value).__name__}")


def _key_value(tag: bytes, key: str, value: Any) -> bytes:
    return _field(tag, _string(b"\x0a", key) + _field(b"\x12", _any_value(value)))


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None, cache: bool = False) -> bytes:
    if not attributes:
        return b""
    parts = []
    for key, value in attributes.items():
        kind = type(value)
        encoded = _cached.get((key, value)) if cache and (kind is str or kind is int) else None
        if encoded is None:
            try:
                encoded = _key_value(tag, key, value)
            except (TypeError, ValueError) as exc:  # as the SDK's encoder does: that attribute left out
                log.error("Failed to encode key %s: %s", key, exc)
                continue
            if cache and (kind is str or kind is int):
                if len(_cached) >= _MAX_CACHED:
                    _cached.clear()
                _cached[(key, value)] = encoded
        parts.append(encoded)
    return b"".join(parts)


def _count(tag: bytes, n: int) -> bytes:
    return tag + _varint(n) if n else b""


def _trace_state(context: SpanContext) -> str:
    state = context.trace_state
    return ",".join(f"{k}={v}" for k, v in state.items()) if state else ""


def encode_span(span: ReadableSpan) -> bytes:
    """One Span message's payload (fields in number order, as protobuf writes them)."""
    context = span.context
    assert context is not None  # an SDK span always has one
    parent = span.parent
    name = _names.get(span.name)
    if name is None:
        if len(_names) >= _MAX_CACHED:
            _names.clear()
        name = _names[span.name] = _string(b"\x2a", span.name)
    start, end, status = span.start_time, span.end_time, span.status
    parts = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big") + b"\x12\x08" + context.span_id.to_bytes(8, "big"),
        _string(b"\x1a", _trace_state(context)) if context.trace_state else b"",
        b"\x22\x08" + parent.span_id.to_bytes(8, "big") if parent is not None else b"",
        name,
        _KIND[span.kind],
        b"\x39" + _fixed64(start) if start else b"",
        b"\x41" + _fixed64(end) if end else b"",
        _attributes(b"\x4a", span.attributes, cache=True),
        _count(b"\x50", span.dropped_attributes),
    ]
    for event in span.events:
        body = b"\x09" + _fixed64(event.timestamp) if event.timestamp else b""
        body += _string(b"\x12", event.name) + _attributes(b"\x1a", event.attributes)
        parts.append(_field(b"\x5a", body + _count(b"\x20", event.dropped_attributes)))
    parts.append(_count(b"\x60", span.dropped_events))
    for link in span.links:
        linked = link.context
        body = b"\x0a\x10" + linked.trace_id.to_bytes(16, "big") + b"\x12\x08" + linked.span_id.to_bytes(8, "big")
        body += _attributes(b"\x22", link.attributes) + _count(b"\x28", link.dropped_attributes)
        parts.append(_field(b"\x6a", body + b"\x35" + (_REMOTE if linked.is_remote else _LOCAL)))
    parts.append(_count(b"\x70", span.dropped_links))
    code = status.status_code.value
    if code or status.description:
        parts.append(_field(b"\x7a", _string(b"\x12", status.description) + (b"\x18" + _varint(code) if code else b"")))
    else:
        parts.append(b"\x7a\x00")  # UNSET: the SDK still writes the (empty) Status
    parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
    return b"".join(parts)


# Resources and scopes are a handful per process, each encoded once; keyed by identity (every span of a
# provider shares its objects), the object kept alongside so its id cannot be reused.
_resources: dict[int, tuple[Resource, bytes]] = {}
_scopes: dict[int, tuple[InstrumentationScope | None, bytes]] = {}


def _resource(resource: Resource) -> bytes:
    known = _resources.get(id(resource))
    if known is None:
        known = _resources[id(resource)] = (resource, _field(b"\x0a", _attributes(b"\x0a", resource.attributes)))
    return known[1]


def _scope(scope: InstrumentationScope | None) -> bytes:
    known = _scopes.get(id(scope))
    if known is None:
        body = b""
        if scope is not None:
            body = _string(b"\x0a", scope.name) + _string(b"\x12", scope.version)
            body += _attributes(b"\x1a", scope.attributes)
        known = _scopes[id(scope)] = (scope, _field(b"\x0a", body))
    return known[1]


# One finished span: its resource, its scope, and its Span message with tag and length (`encoded`).
Encoded = tuple[Resource, InstrumentationScope | None, bytes]


def encoded(span: ReadableSpan) -> Encoded:
    return span.resource, span.instrumentation_scope, _field(b"\x12", encode_span(span))


def encode_request(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialized ExportTraceServiceRequest of `spans`."""
    return assemble([encoded(span) for span in spans])


def assemble(spans: Sequence[Encoded]) -> bytes:
    """The ExportTraceServiceRequest of spans encoded earlier, grouped by resource, then by scope."""
    grouped: dict[int, tuple[Resource, dict[int, tuple[InstrumentationScope | None, list[bytes]]]]] = {}
    for resource, scope, span in spans:
        scopes = grouped.setdefault(id(resource), (resource, {}))[1]
        scopes.setdefault(id(scope), (scope, []))[1].append(span)
    out = []
    for resource, scopes in grouped.values():
        body = [_resource(resource)]
        for scope, encoded_spans in scopes.values():
            schema = _string(b"\x1a", scope.schema_url if scope is not None else None)
            body.append(_field(b"\x12", _scope(scope) + b"".join(encoded_spans) + schema))
        body.append(_string(b"\x1a", resource.schema_url))
        out.append(_field(b"\x0a", b"".join(body)))
    return b"".join(out)
