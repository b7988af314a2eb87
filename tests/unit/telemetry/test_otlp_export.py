"""genesis.telemetry.otlp_export: the settings it reads as the SDK's exporter reads them, and what it posts; and
genesis.telemetry.span_batches, which feeds it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from genesis.local.services import free_port
from genesis.telemetry.otlp_export import OtlpHttpSpanExporter, endpoint, handles
from genesis.telemetry.span_batches import EncodedBatchProcessor
from tests.relay_harness import eventually

SPANS = [ReadableSpan("POST /genesis/sessions", SpanContext(0xABC, 0x12, is_remote=False))]


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://localhost:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, "http://collector:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c/otlp"}, "https://c/otlp/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b/t"}, "http://b/t"),
    ],
)
def test_the_endpoint_is_resolved_as_the_sdk_resolves_it(env: dict[str, str], url: str) -> None:
    assert endpoint(env) == url


@pytest.mark.parametrize(
    ("env", "ours"),
    [
        ({}, True),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_EXPORTER_OTLP_HEADERS": "a=b"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, True),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, False),
        ({"OTEL_EXPORTER_OTLP_CERTIFICATE": "/ca.pem"}, False),
        ({"OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY": "/k.pem"}, False),
        ({"OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER": "x"}, False),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, False),
    ],
)
def test_settings_it_does_not_handle_leave_the_export_to_the_sdk(env: dict[str, str], ours: bool) -> None:
    assert handles(env) is ours


def test_headers_timeout_and_compression_come_from_the_settings() -> None:
    exporter = OtlpHttpSpanExporter(
        {
            "OTEL_EXPORTER_OTLP_HEADERS": "api-key=general,x-tenant=t%201",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "api-key=traces",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2.5",
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "GZIP",
        }
    )
    assert exporter.headers["api-key"] == "traces"  # the traces setting wins whole, as in the SDK
    assert "x-tenant" not in exporter.headers
    assert (exporter.timeout, exporter.compression, exporter.headers["content-encoding"]) == (2.5, "gzip", "gzip")
    assert OtlpHttpSpanExporter({"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}).timeout == 10.0


class Collector:
    """Answers each POST with the next of `statuses` (then 200), keeping what came."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.port = free_port()

    async def traces(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    def exporter(self, **env: str) -> OtlpHttpSpanExporter:
        return OtlpHttpSpanExporter({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.port}", **env})


@pytest.fixture
async def collector(request: pytest.FixtureRequest) -> AsyncIterator[Collector]:
    found = Collector(*getattr(request, "param", ()))
    app = web.Application()
    app.router.add_post("/v1/traces", found.traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", found.port).start()
    yield found
    await runner.cleanup()


def _spans(body: bytes) -> list[str]:
    request = ExportTraceServiceRequest.FromString(body)
    return [s.name for r in request.resource_spans for scope in r.scope_spans for s in scope.spans]


async def test_spans_are_posted_as_otlp_protobuf_with_the_configured_headers(collector: Collector) -> None:
    exporter = collector.exporter(OTEL_EXPORTER_OTLP_HEADERS="api-key=k")
    assert await asyncio.to_thread(exporter.export, SPANS) is SpanExportResult.SUCCESS
    ((headers, body),) = collector.received
    assert (headers["Content-Type"], headers["api-key"]) == ("application/x-protobuf", "k")
    assert _spans(body) == ["POST /genesis/sessions"]


async def test_gzip_compression(collector: Collector) -> None:
    exporter = collector.exporter(OTEL_EXPORTER_OTLP_COMPRESSION="gzip")
    assert await asyncio.to_thread(exporter.export, SPANS) is SpanExportResult.SUCCESS
    ((headers, body),) = collector.received
    assert headers["Content-Encoding"] == "gzip"
    assert _spans(body) == ["POST /genesis/sessions"]  # aiohttp decompressed it: it was gzip indeed


@pytest.mark.parametrize("collector", [(503,)], indirect=True)
async def test_a_transient_refusal_is_retried(collector: Collector) -> None:
    assert await asyncio.to_thread(collector.exporter().export, SPANS) is SpanExportResult.SUCCESS
    assert [_spans(body) for _, body in collector.received] == [["POST /genesis/sessions"]] * 2


@pytest.mark.parametrize("collector", [(400,)], indirect=True)
async def test_a_request_the_collector_refuses_is_not_sent_again(collector: Collector) -> None:
    assert await asyncio.to_thread(collector.exporter().export, SPANS) is SpanExportResult.FAILURE
    assert len(collector.received) == 1


async def test_nothing_is_posted_after_shutdown(collector: Collector) -> None:
    exporter = collector.exporter()
    exporter.shutdown()
    assert exporter.export(SPANS) is SpanExportResult.FAILURE
    assert exporter.force_flush()
    assert collector.received == []


def test_no_collector_fails_the_export_within_its_timeout() -> None:
    exporter = OtlpHttpSpanExporter({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
                                     "OTEL_EXPORTER_OTLP_TIMEOUT": "0.5"})  # fmt: skip
    assert exporter.export(SPANS) is SpanExportResult.FAILURE


def _provider(collector: Collector, **bsp: str) -> tuple[TracerProvider, EncodedBatchProcessor]:
    exporter = collector.exporter()
    processor = EncodedBatchProcessor(exporter, {f"OTEL_BSP_{k.upper()}": v for k, v in bsp.items()})
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return provider, processor


def _received(collector: Collector) -> list[list[str]]:
    return [_spans(body) for _, body in collector.received]


async def test_a_full_batch_goes_at_once(collector: Collector) -> None:
    provider, processor = _provider(collector, schedule_delay="600000", max_export_batch_size="2")
    assert (processor.delay, processor.batch, processor.capacity) == (600, 2, 2048)
    tracer = provider.get_tracer("t")
    for name in ("a", "b", "c"):
        tracer.start_span(name).end()

    async def batch_arrived() -> bool:
        return bool(collector.received)

    await eventually(batch_arrived, within=10, what="the first batch")
    assert _received(collector) == [["a", "b"]]  # "c" waits for the next batch or the delay
    await asyncio.to_thread(provider.shutdown)  # sends what waits, then stops
    assert _received(collector) == [["a", "b"], ["c"]]
    assert not processor.force_flush()


async def test_a_flush_sends_what_waits_and_unsampled_spans_are_not_sent(collector: Collector) -> None:
    provider, _ = _provider(collector, schedule_delay="600000")
    tracer = provider.get_tracer("t")
    unsampled = SpanContext(0xABC, 0x34, is_remote=True, trace_flags=TraceFlags(0))
    tracer.start_span("kept").end()
    tracer.start_span("dropped", context=set_span_in_context(NonRecordingSpan(unsampled))).end()
    assert await asyncio.to_thread(provider.force_flush)
    assert _received(collector) == [["kept"]]
    await asyncio.to_thread(provider.shutdown)
    assert _received(collector) == [["kept"]]


def test_bad_batch_settings_fall_back_to_the_sdk_defaults() -> None:
    bad = {"OTEL_BSP_SCHEDULE_DELAY": "soon", "OTEL_BSP_MAX_QUEUE_SIZE": "-1", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "0"}
    processor = EncodedBatchProcessor(OtlpHttpSpanExporter({}), bad)
    assert (processor.delay, processor.batch, processor.capacity) == (5, 512, 2048)
    processor.shutdown()
