"""OpenTelemetry for the API and the relay: one TracerProvider per process.

With the standard OTLP settings (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
plus the exporter's other `OTEL_EXPORTER_OTLP_*` settings, and the SDK's `OTEL_BSP_*`) spans are batched
and exported over OTLP/HTTP by genesis.telemetry.otlp_export (or the SDK's exporter, for settings ours leaves to it).
Without them nothing is recorded or exported, but the API still starts a trace (ids only) for a request that
brought none, so every event carries a trace context.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

from genesis.telemetry import db_spans, otlp_export
from genesis.telemetry.span_batches import EncodedBatchProcessor

ENDPOINT_SETTINGS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")

_exporting = False
_configured = False


class HashedOnce(Resource):
    """A Resource that hashes itself once: the SDK's OTLP encoder (when it is the one used) groups every span
    by its resource, and the SDK's hash is a sorted `json.dumps` of the attributes, again for each span."""

    _hash: int | None = None

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = super().__hash__()
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or super().__eq__(other)


def exporting_configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for spans to be exported (and the SDK is not disabled)."""
    e = os.environ if env is None else env
    if e.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if e.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(e.get(name, "").strip() for name in ENDPOINT_SETTINGS)


def exporting() -> bool:
    """Whether this process exports spans; callers skip building spans nobody would see."""
    return _exporting


def setup(service_name: str, *, sql_spans: bool = False, database_url: str = "") -> None:
    """Installs the process's TracerProvider (once). With `sql_spans` (the API's TRACE_SQL_SPANS), when
    exporting, also the CLIENT spans of its SQL calls (genesis.telemetry.db_spans), unless
    `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=asyncpg` (the asyncpg instrumentation's off switch) says no.
    They are off by default: the API's request path makes one SQL call, so its CLIENT span repeats the
    SERVER span's timing less the HTTP work, and costs about as much again (~60 µs a command; docs/benchmarks.md).
    The API's SERVER span is api.server_spans' middleware, in every Application create_app makes."""
    global _configured, _exporting
    if not _configured:
        _configured = True
        _exporting = exporting_configured()
        if _exporting:
            # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, when set, win over the default name.
            created = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service_name})
            resource = HashedOnce(created.attributes, created.schema_url)
            provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER (parent-based)
            provider.add_span_processor(_processor())
        else:
            # Non-recording spans: a new trace gets ids and nothing more; a caller's sampled trace is
            # kept sampled (its flags go on), recorded by nobody.
            provider = TracerProvider(sampler=ParentBased(root=ALWAYS_OFF))
        trace.set_tracer_provider(provider)
    if sql_spans and _exporting:
        disabled = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
        if "asyncpg" not in {name.strip() for name in disabled.split(",")}:
            db_spans.enable(database_url)


def _processor() -> SpanProcessor:
    """Ours (genesis.telemetry.span_batches and otlp_export: spans encoded as they end, ~4× cheaper than the SDK's
    encoder, nothing kept for the garbage collector to walk), unless a setting only the SDK's OTLPSpanExporter
    handles is given (TLS files, a credential provider): then the SDK's BatchSpanProcessor and exporter."""
    if otlp_export.handles():
        return EncodedBatchProcessor(otlp_export.OtlpHttpSpanExporter())
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return BatchSpanProcessor(OTLPSpanExporter())


def current_context() -> tuple[str | None, str | None]:
    """The current span's W3C `traceparent` and `tracestate`, as stored with an event."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent"), carrier.get("tracestate") or None


def shutdown() -> None:
    """Flushes what is batched (the SDK also does it at exit)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()
