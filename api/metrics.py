"""The API's Prometheus metrics and its `GET /metrics`, which also reports the outbox (`outbox_gauges()`, refreshed
in the background by genesis.telemetry.outbox_gauges, never per scrape).

The API keeps its own registry: `genesis dev` runs the API and a relay in one process, and the
relay's per-process series (broker up, listener up, published…) belong on the relay's port only.
The outbox gauges come from one table (genesis.telemetry.metric_names.OUTBOX_GAUGES): the same names and help
on both sources, so one alert covers both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from api import state
from api.middlewares import ERROR_CODE
from genesis.telemetry.metric_names import LATENCY_BUCKETS, OUTBOX_GAUGES
from genesis.telemetry.outbox_gauges import OutboxGauges

log = logging.getLogger("genesis.api")

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

REQUESTS = Counter(
    "genesis_api_requests_total",
    "HTTP requests by route name, method and status",
    ["route", "method", "status"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "genesis_api_request_seconds",
    "Time to answer an HTTP request, by route name (event streams excluded)",
    ["route"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
COMMANDS = Counter(
    "genesis_api_commands_total",
    "Commands by type and outcome (accepted, replayed, refused); error_code names the refusal",
    ["command_type", "outcome", "error_code"],
    registry=REGISTRY,
)
DUPLICATES = Counter(
    "genesis_api_duplicate_commands_total",
    "Commands refused because an equal one was still RECEIVED or PROCESSING (409 DUPLICATE_COMMAND)",
    ["command_type"],
    registry=REGISTRY,
)
STATS_ERRORS = Counter(
    "genesis_api_outbox_stats_errors_total",
    "Background refreshes whose outbox_gauges() query failed (the outbox gauges are left out until the next one)",
    registry=REGISTRY,
)

MALFORMED_REQUESTS = Counter(
    "genesis_api_malformed_requests_total",
    "Requests aiohttp refused before the app saw them (bad HTTP, header over 16 KiB); not logged one by one",
    registry=REGISTRY,
)


# Set by the submit_command handler once the command type is known to be one of the catalogue's.
COMMAND_TYPE = web.RequestKey("command_type", str)
_SUBMIT_ROUTE = "submit_command"

routes = web.RouteTableDef()


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts every request by route name (never the raw path: ids would explode the series)."""
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _record(request, exc.status, exc, started)
        raise
    except Exception:
        _record(request, 500, None, started)
        raise
    _record(request, response.status, response, started)
    return response


def _record(request: web.Request, status: int, response: web.StreamResponse | None, started: float) -> None:
    route = request.match_info.route.name or "unmatched"
    REQUESTS.labels(route, request.method, str(status)).inc()
    # An event stream's "latency" is how long the client stayed; it would drown the real figures.
    if not (response is not None and response.content_type == "text/event-stream"):
        REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)
    if route == _SUBMIT_ROUTE:
        _record_command(request, status, response)


def _record_command(request: web.Request, status: int, response: web.StreamResponse | None) -> None:
    # Set only once the type is known (validated), so never a client's raw string.
    command_type = request.get(COMMAND_TYPE) or "unknown"
    if status < 400:
        replayed = response is not None and response.headers.get("Idempotent-Replayed") == "true"
        COMMANDS.labels(command_type, "replayed" if replayed else "accepted", "").inc()
        return
    error_code = (response.get(ERROR_CODE) if response is not None else None) or f"HTTP_{status}"
    COMMANDS.labels(command_type, "refused", error_code).inc()
    if error_code == "DUPLICATE_COMMAND":
        DUPLICATES.labels(command_type).inc()


@routes.get("/metrics", name="metrics")
async def metrics_view(request: web.Request) -> web.Response:
    """From memory only: the outbox gauges are the background refresher's last result
    (genesis.telemetry.outbox_gauges)."""
    values = request.app[state.OUTBOX_GAUGES].values
    outbox = outbox_exposition(values) if values is not None else b""
    return web.Response(body=generate_latest(REGISTRY) + outbox, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def outbox_gauges(app: web.Application) -> AsyncIterator[None]:
    """A cleanup_ctx: one refresher per API process, on a database connection of its own."""
    settings = app[state.SETTINGS]
    gauges = app[state.OUTBOX_GAUGES] = OutboxGauges(
        settings.database_url,
        application_name="genesis-api-metrics",
        statement_cache_size=settings.db_statement_cache_size,
        interval=settings.metrics_refresh_interval,
        on_error=STATS_ERRORS.inc,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(gauges.run(stop))
    yield
    stop.set()
    await task


def outbox_exposition(stats: Mapping[str, float]) -> bytes:
    """The outbox gauges as Prometheus text, from the refresher's last outbox_gauges() row."""
    registry = CollectorRegistry(auto_describe=False)
    for gauge in OUTBOX_GAUGES:
        Gauge(gauge.name, gauge.documentation, registry=registry).set(stats[gauge.column])
    return generate_latest(registry)
