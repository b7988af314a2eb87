"""The fast OTLP span encoding gives the very bytes the SDK's encoder gives, for every kind of span we make."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, TraceState
from opentelemetry.util.types import AttributeValue

from genesis import otlp_encoding
from genesis.tracing import HashedOnce


class _Kept(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def _provider(resource: Resource, kept: _Kept) -> TracerProvider:
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(kept))
    return provider


def _spans() -> list[ReadableSpan]:
    kept = _Kept()
    created = Resource.create({"service.name": "genesis-api"})
    api = _provider(HashedOnce(created.attributes, created.schema_url), kept)
    other = _provider(Resource({"service.name": "genesis-relay"}, "https://opentelemetry.io/schemas/1.30.0"), kept)
    server_tracer = api.get_tracer("api.server_spans")
    db_tracer = api.get_tracer("genesis.db_spans", "1.0", schema_url="https://opentelemetry.io/schemas/1.30.0")
    caller = trace.SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=trace.TraceFlags(1),
                               trace_state=TraceState([("genesis", "test"), ("other", "x")]))  # fmt: skip
    attributes: dict[str, AttributeValue] = {
        "http.request.method": "POST", "server.port": 8000, "flag": True, "ratio": 0.5, "empty": "",
    }  # fmt: skip
    with server_tracer.start_as_current_span(
        "POST /genesis/sessions", context=trace.set_span_in_context(trace.NonRecordingSpan(caller)),
        kind=SpanKind.SERVER, attributes=attributes,
    ) as server:  # fmt: skip
        db_tracer.start_span("SELECT submit_command", kind=SpanKind.CLIENT, attributes={"db.system.name": "x"}).end()
        failed = db_tracer.start_span("SELECT get_session", kind=SpanKind.CLIENT)
        failed.set_status(Status(StatusCode.ERROR, "GS404"))
        failed.end()
        server.set_attribute("http.response.status_code", 201)
    root = server_tracer.start_span("GET /healthz", kind=SpanKind.SERVER)  # no parent, no attributes
    root.end()
    relay = other.get_tracer("relay.tracing")
    relay.start_span("send t", kind=SpanKind.PRODUCER, links=[Link(caller)], attributes={"a": 1}).end()
    with relay.start_as_current_span("with event", attributes={"tags": ("a", "b")}) as span:
        span.add_event("happened", {"n": 1})
        server_tracer.start_span("array attribute", attributes={"ids": [1, 2]}).end()
    server_tracer.start_span("again on the first resource", kind=SpanKind.CONSUMER).end()
    return kept.spans


def test_the_bytes_are_the_sdks() -> None:
    spans = _spans()
    assert len(spans) == 8
    assert otlp_encoding.encode_spans(spans).SerializeToString() == sdk_encode_spans(spans).SerializeToString()
    assert otlp_encoding.encode_spans(spans) == sdk_encode_spans(spans)


def test_an_empty_batch_is_an_empty_request() -> None:
    assert otlp_encoding.encode_spans([]).SerializeToString() == sdk_encode_spans([]).SerializeToString()
