"""OpenTelemetry for the API and the relay: one TracerProvider per process.

With the standard OTLP settings (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
plus the exporter's other `OTEL_EXPORTER_OTLP_*` and `OTEL_BSP_*` settings, read by the SDK itself) spans
are batched and exported over OTLP/HTTP. Without them nothing is recorded or exported, but the API still
starts a trace (ids only) for a request that brought none, so every event carries a trace context.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

ENDPOINT_SETTINGS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")

_exporting = False
_configured = False
_light_api = False  # the API traces with trace_context_middleware (nothing exported), not the instrumentation
_tracer = trace.get_tracer(__name__)


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


def setup(service_name: str, *, instrument_api: bool = False) -> None:
    """Installs the process's TracerProvider (once) and, for the API: when exporting, the aiohttp-server
    instrumentation (every `web.Application` made afterwards gets its middleware) and the asyncpg spans;
    else `trace_context_middleware` (see `api_middlewares`)."""
    global _configured, _exporting, _light_api
    if not _configured:
        _configured = True
        _exporting = exporting_configured()
        if _exporting:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, when set, win over the default name.
            resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service_name})
            provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER (parent-based)
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            # Non-recording spans: a new trace gets ids and nothing more; a caller's sampled trace is
            # kept sampled (its flags go on), recorded by nobody.
            provider = TracerProvider(sampler=ParentBased(root=ALWAYS_OFF))
        trace.set_tracer_provider(provider)
    if instrument_api and not _exporting:
        # The instrumentation collects its attributes and metrics even for spans nobody records (~0.15 ms a
        # request here); with nothing exported the API only needs the ids.
        _light_api = True
    elif instrument_api:
        from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor

        instrumentor = AioHttpServerInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
        # The auto-instrumentation's setting: OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=asyncpg saves a span a query.
        disabled = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
        if "asyncpg" not in {name.strip() for name in disabled.split(",")}:
            from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

            pg = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
            if not pg.is_instrumented_by_opentelemetry:
                pg.instrument()


def api_middlewares() -> list[Middleware]:
    """What create_app puts first: `trace_context_middleware` when the API traces without exporting."""
    return [trace_context_middleware] if _light_api else []


@web.middleware
async def trace_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Continues the caller's W3C trace context, or starts a trace, for the request: a non-recording span
    (the provider samples nothing of its own), so the events it causes carry a traceparent at the cost of ids."""
    with _tracer.start_as_current_span(
        "request", context=propagate.extract(request.headers), kind=trace.SpanKind.SERVER
    ):
        return await handler(request)


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
