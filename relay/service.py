"""One relay replica: the LISTEN connection, the worker, the sweeper and the metrics endpoint, watched together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from genesis import db
from genesis.listener import Listener
from genesis.migrate import require_migrated
from genesis.outbox import prune_sent
from genesis.settings import Settings
from genesis.telemetry.outbox_gauges import OutboxGauges
from genesis.waits import stopped_within, watch
from relay import metrics
from relay.brokerinfo import decide_idempotence
from relay.idempotent import publisher_for
from relay.publisher import Publisher
from relay.worker import RelayWorker

log = logging.getLogger("genesis.relay")

OUTBOX_CHANNEL = "genesis_outbox_v1"
STATS_INTERVAL = 5.0
BROKER_CHECK_INTERVAL = 2.0
FLUSH_TIMEOUT = 2.0  # on the way out; the worker awaits its sends, so little is ever buffered


class BrokerWatch:
    """Whether the broker answers, checked on a schedule so readiness says so even while idle."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self.answers = True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            answers = await self._publisher.probe()
            if answers != self.answers:
                log.log(logging.INFO if answers else logging.WARNING, "broker %s", "answers" if answers else "is down")
            self.answers = answers
            await stopped_within(stop, BROKER_CHECK_INTERVAL)


async def run_relay(settings: Settings, stop: asyncio.Event, *, metrics_sockets: Sequence[socket.socket] = ()) -> None:
    """Runs until `stop` is set: finishes the batch in flight, flushes the producer, returns.

    Its metrics are served on `metrics_sockets` when given (bound by `genesis relay` before it starts), else on
    API_HOST:RELAY_METRICS_PORT."""
    decided = await decide_idempotence(settings, stop)  # KAFKA_ENABLE_IDEMPOTENCE=auto asks the broker
    if decided is None:
        return
    settings = decided
    # READ COMMITTED (the pool's): the SKIP LOCKED claims and token-fenced updates re-check a row another relay
    # changed meanwhile; at REPEATABLE READ they would fail with a serialization error instead.
    pool = await db.create_pool(
        settings.database_url,
        application_name="genesis-relay",
        max_size=3,
        statement_cache_size=settings.db_statement_cache_size,
    )
    publisher = publisher_for(settings, timeout=settings.relay_publish_timeout)
    try:
        await require_migrated(pool)
        if not await _start_publisher(publisher, stop):
            return
        worker = RelayWorker(
            pool,
            publisher,
            batch_size=settings.relay_batch_size,
            poll_interval=settings.relay_poll_interval,
            max_retries=settings.relay_max_retries,
            retry_base_delay=settings.relay_retry_base_delay,
            lease=settings.relay_lease,
            topic=settings.kafka_topic,
            source=settings.cloudevents_source,
        )
        listener = None
        if settings.relay_listen:
            listener = Listener(
                settings.listen_dsn,
                [OUTBOX_CHANNEL],
                on_notify=lambda _channel, _payload: worker.wake.set(),
                on_connect=worker.wake.set,  # catch up on anything missed while disconnected
                application_name="genesis-relay-listener",
            )
        broker = BrokerWatch(publisher)
        metrics_site = await _serve_metrics(settings, listener, worker, broker, metrics_sockets)
        # Read at scrape time, so the gauges never lag what /readyz says.
        metrics.BROKER_UP.set_function(lambda: float(broker.answers and worker.broker_up))
        if listener is not None:
            metrics.LISTENER_UP.set_function(lambda: float(listener.connected))
        else:
            metrics.without_listener()
        log.info(
            "relay started",
            extra={"fields": {"batch_size": settings.relay_batch_size, "listen": settings.relay_listen}},
        )
        # The outbox gauges on a connection of their own, off the claim pool (shared with the API's /metrics).
        gauges = OutboxGauges(
            settings.database_url,
            application_name="genesis-relay-metrics",
            statement_cache_size=settings.db_statement_cache_size,
            interval=min(STATS_INTERVAL, settings.metrics_refresh_interval),
            on_refresh=metrics.record_stats,
        )
        jobs = [worker.run(stop), _sweep(pool, settings, stop), broker.run(stop), gauges.run(stop)]
        if listener is not None:
            jobs.append(listener.run(stop))
        try:
            await watch(stop, *jobs)
        finally:
            await metrics_site.cleanup()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(publisher.stop(), FLUSH_TIMEOUT)
        await pool.close()
        log.info("relay stopped")


async def _start_publisher(publisher: Publisher, stop: asyncio.Event) -> bool:
    """Waits for the broker at start-up (it may come up after us) instead of crashing; False if stopped."""
    delay = 0.5
    while True:
        try:
            await publisher.start()
            return True
        except Exception as exc:
            log.warning("broker not reachable (%s); retrying in %.1fs", exc, delay)
            if await stopped_within(stop, delay):
                return False
            delay = min(delay * 2, 5.0)


async def _sweep(pool: asyncpg.Pool[Any], settings: Settings, stop: asyncio.Event) -> None:
    """On its schedule prunes SENT rows and fails stale commands."""
    loop = asyncio.get_running_loop()
    next_sweep = loop.time()
    while not stop.is_set():
        try:
            if loop.time() >= next_sweep:
                next_sweep = loop.time() + settings.relay_sweep_interval
                pruned = await prune_sent(pool, settings.relay_retention, stopped=stop.is_set)
                expired = await pool.fetchval(
                    "SELECT expire_stale_commands(make_interval(secs => $1))", settings.command_timeout
                )
                # Waiting flows past their deadline: EXPIRED, with a Genesis.Session.Flow.Failed event.
                expired_flows = await pool.fetchval("SELECT expire_flow_handles()")
                if pruned or expired or expired_flows:
                    fields = {"pruned_sent_rows": pruned, "expired_commands": expired, "expired_flows": expired_flows}
                    log.info("sweep", extra={"fields": fields})
        except (*db.DATABASE_GONE, asyncpg.PostgresError) as exc:
            log.warning("sweep failed: %s", exc)  # the next round tries again
        await stopped_within(stop, min(STATS_INTERVAL, settings.relay_sweep_interval))


async def _serve_metrics(
    settings: Settings,
    listener: Listener | None,
    worker: RelayWorker,
    broker: BrokerWatch,
    sockets: Sequence[socket.socket],
) -> web.AppRunner:
    async def metrics_view(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def ready(request: web.Request) -> web.Response:
        checks = {"broker": broker.answers and worker.broker_up}
        if listener is not None:  # without LISTEN the relay polls, and needs no listener
            checks["listener"] = listener.connected
        ok = all(checks.values())
        return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sites: list[web.BaseSite] = [web.SockSite(runner, sock) for sock in sockets]
    for site in sites or [web.TCPSite(runner, settings.api_host, settings.relay_metrics_port)]:
        await site.start()
    return runner
