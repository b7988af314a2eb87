"""The composition root: the services (API, relay, development agent) built from their rooms, and run in one event
loop until SIGINT/SIGTERM. The rooms are imported lazily, so that `genesis migrate` loads none of them."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiohttp import web

from genesis import db
from genesis.cli import ports
from genesis.migrate import MigrationError
from genesis.settings import Settings, SettingsError

log = logging.getLogger("genesis")

Service = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def run_services(services: Sequence[Service]) -> int:
    """Runs the services until a signal (exit 0) or until one of them fails (exit 1); a SettingsError one of them
    raises at start-up is raised again once all have stopped."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_run(services))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (every supported platform but Windows): the API's CPU per request is mostly
    the event loop's and the transports', and libuv's do the same work for less (docs/benchmarks.md)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _run(services: Sequence[Service]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGHUP too: a closed terminal stops the services cleanly (and `genesis dev` then stops what it started).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(service(stop)) for service in services]
    failed = False
    refused: SettingsError | MigrationError | None = None
    database: Exception | None = None
    for done in asyncio.as_completed(tasks):
        try:
            await done
        except (SettingsError, MigrationError) as exc:
            refused = refused or exc  # a setting or a database found wrong at start-up: one line, from main (exit 2)
        except db.DATABASE_REFUSED as exc:
            database = database or exc  # DATABASE_URL names no database or role to serve: one line too (exit 1)
        except Exception:
            # A service that dies takes the process with it rather than leaving it half alive.
            log.exception("service failed; stopping")
            failed = True
        stop.set()
    if refused is not None:
        raise refused
    if database is not None:
        raise database
    return 1 if failed else 0


def api_sockets(settings: Settings) -> list[socket.socket]:
    """API_HOST:API_PORT, bound now (genesis.cli.ports): before anything starts or says it runs."""
    return ports.listen(settings.api_host, settings.api_port, "API_PORT")


def relay_sockets(settings: Settings) -> list[socket.socket]:
    return ports.listen(settings.api_host, settings.relay_metrics_port, "RELAY_METRICS_PORT")


async def serve_api(settings: Settings, stop: asyncio.Event, sockets: list[socket.socket]) -> None:
    """The API on `sockets` (api_sockets), until `stop`."""
    from api.app import create_app
    from api.server import ApiRunner, quiet_bad_requests
    from genesis.telemetry import tracing

    try:
        tracing.setup("genesis-api", sql_spans=settings.trace_sql_spans, database_url=settings.database_url)
        quiet_bad_requests()
        runner = ApiRunner(create_app(settings), settings, access_log=None, handle_signals=False, shutdown_timeout=5)
        await runner.setup()
        try:
            for sock in sockets:
                await web.SockSite(runner, sock).start()
            log.info("API listening on http://%s:%s", settings.api_host, settings.api_port)
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        ports.close(sockets)


async def serve_relay(settings: Settings, stop: asyncio.Event, metrics_sockets: list[socket.socket]) -> None:
    """A relay with its metrics on `metrics_sockets` (relay_sockets), until `stop`."""
    from genesis.telemetry import tracing
    from relay.service import run_relay

    try:
        tracing.setup("genesis-relay")
        await run_relay(settings, stop, metrics_sockets=metrics_sockets)
    finally:
        ports.close(metrics_sockets)


def check_dev_agent(settings: Settings) -> None:
    from agents.dev_agent import check_dev_agent_settings

    check_dev_agent_settings(settings)


async def serve_dev_agent(settings: Settings, stop: asyncio.Event) -> None:
    from agents.dev_agent import serve_agent

    await serve_agent(settings, stop)
