"""One relay replica: the LISTEN connection, the worker, the sweeper and the metrics endpoint, watched together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from genesis import db
from genesis.listener import Listener
from genesis.settings import Settings
from relay import metrics
from relay.publisher import Publisher
from relay.worker import RelayWorker, _stopped_within

log = logging.getLogger("genesis.relay")

OUTBOX_CHANNEL = "genesis_outbox_v1"
STATS_INTERVAL = 5.0
PUBLISH_TIMEOUT = 5.0


async def run_relay(settings: Settings, stop: asyncio.Event, *, publish_timeout: float = PUBLISH_TIMEOUT) -> None:
    """Runs until `stop` is set: finishes the batch in flight, flushes the producer, returns."""
    pool = await db.create_pool(
        settings.database_url, application_name="genesis-relay", kafka_topic=settings.kafka_topic, max_size=3
    )
    publisher = Publisher(settings, timeout=publish_timeout)
    try:
        await _start_publisher(publisher, stop)
        worker = RelayWorker(
            pool,
            publisher,
            batch_size=settings.relay_batch_size,
            poll_interval=settings.relay_poll_interval,
            max_retries=settings.relay_max_retries,
            retry_base_delay=settings.relay_retry_base_delay,
            lease=settings.relay_lease,
        )
        listener = Listener(
            settings.listen_database_url or settings.database_url,
            [OUTBOX_CHANNEL],
            on_notify=lambda _channel, _payload: worker.wake.set(),
            on_connect=worker.wake.set,  # catch up on anything missed while disconnected
            application_name="genesis-relay-listener",
        )
        metrics_site = await _serve_metrics(settings, listener, worker)
        metrics.BROKER_UP.set(1)
        log.info("relay started", extra={"fields": {"batch_size": settings.relay_batch_size}})
        try:
            await _watch(
                stop,
                worker.run(stop),
                listener.run(stop),
                _sweep(pool, settings, stop),
                _track_listener(listener, stop),
            )
        finally:
            await metrics_site.cleanup()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(publisher.stop(), 5)
        await pool.close()
        log.info("relay stopped")


async def _start_publisher(publisher: Publisher, stop: asyncio.Event) -> None:
    """Waits for the broker at start-up (it may come up after us) instead of crashing."""
    delay = 0.5
    while True:
        try:
            await publisher.start()
            return
        except Exception as exc:
            log.warning("broker not reachable (%s); retrying in %.1fs", exc, delay)
            if await _stopped_within(stop, delay):
                raise
            delay = min(delay * 2, 5.0)


async def _watch(stop: asyncio.Event, *jobs: Coroutine[Any, Any, None]) -> None:
    """Runs side by side; if one job dies the replica stops rather than limp on."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                stop.set()
                raise task.exception()  # type: ignore[misc]
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _sweep(pool: asyncpg.Pool[Any], settings: Settings, stop: asyncio.Event) -> None:
    """Keeps the gauges fresh, and on its schedule prunes SENT rows and fails stale commands."""
    loop = asyncio.get_running_loop()
    next_sweep = loop.time()
    while not stop.is_set():
        try:
            stats = await pool.fetchrow("SELECT * FROM outbox_stats()")
            if stats is not None:
                metrics.record_stats(dict(stats))
            if loop.time() >= next_sweep:
                next_sweep = loop.time() + settings.relay_sweep_interval
                pruned = await pool.fetchval("SELECT prune_outbox(make_interval(secs => $1))", settings.relay_retention)
                expired = await pool.fetchval(
                    "SELECT expire_stale_commands(make_interval(secs => $1))", settings.command_timeout
                )
                if pruned or expired:
                    log.info("sweep", extra={"fields": {"pruned_sent_rows": pruned, "expired_commands": expired}})
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("sweep failed: %s", exc)  # the next round tries again
        await _stopped_within(stop, STATS_INTERVAL)


async def _track_listener(listener: Listener, stop: asyncio.Event) -> None:
    while not stop.is_set():
        metrics.LISTENER_UP.set(1 if listener.connected else 0)
        await _stopped_within(stop, 0.5)


async def _serve_metrics(settings: Settings, listener: Listener, worker: RelayWorker) -> web.AppRunner:
    async def metrics_view(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def ready(request: web.Request) -> web.Response:
        checks = {"listener": listener.connected, "broker": worker.broker_up}
        return web.json_response(
            {"status": "ok" if all(checks.values()) else "unavailable", "checks": checks},
            status=200 if all(checks.values()) else 503,
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.api_host, settings.relay_metrics_port)
    await site.start()
    return runner
