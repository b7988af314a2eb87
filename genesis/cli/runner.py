"""The composition root: the services (API, relay, development agent) built from their rooms, and run in one event
loop until SIGINT/SIGTERM. The rooms are imported lazily, so that `genesis migrate` loads none of them."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiohttp import web

from genesis.settings import Settings

log = logging.getLogger("genesis")

Service = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def run_services(services: Sequence[Service]) -> int:
    """Runs the services until a signal (exit 0) or until one of them fails (exit 1)."""
    return asyncio.run(_run(services))


async def _run(services: Sequence[Service]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGHUP too: a closed terminal stops the services cleanly (and `genesis dev` then stops what it started).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(service(stop)) for service in services]
    failed = False
    for done in asyncio.as_completed(tasks):
        try:
            await done
        except Exception:
            # A service that dies takes the process with it rather than leaving it half alive.
            log.exception("service failed; stopping")
            failed = True
        stop.set()
    return 1 if failed else 0


async def serve_api(settings: Settings, stop: asyncio.Event) -> None:
    from api.app import create_app
    from api.server import ApiRunner, quiet_bad_requests
    from genesis.telemetry import tracing

    tracing.setup("genesis-api", sql_spans=settings.trace_sql_spans, database_url=settings.database_url)
    quiet_bad_requests()
    runner = ApiRunner(create_app(settings), settings, access_log=None, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.api_host, settings.api_port).start()
        log.info("API listening on http://%s:%s", settings.api_host, settings.api_port)
        await stop.wait()
    finally:
        await runner.cleanup()


async def serve_relay(settings: Settings, stop: asyncio.Event) -> None:
    from genesis.telemetry import tracing
    from relay.service import run_relay

    tracing.setup("genesis-relay")
    await run_relay(settings, stop)


def check_dev_agent(settings: Settings) -> None:
    from agents.dev_agent import check_dev_agent_settings

    check_dev_agent_settings(settings)


async def serve_dev_agent(settings: Settings, stop: asyncio.Event) -> None:
    from agents.dev_agent import serve_agent

    await serve_agent(settings, stop)
