"""The aiohttp application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from api import asyncapi, console, docs, events, health, metrics, openapi, sessions, state, stream_tokens, tasks
from api.batches import Batcher
from api.cors import cors_headers, cors_middleware
from api.live import EVENTS_CHANNEL, PROGRESS_CHANNEL, EventHub
from api.middlewares import auth_middleware, error_middleware, request_id_header, request_id_middleware
from api.requests import MAX_BODY_BYTES
from api.routing import add_routes
from api.server_spans import server_span_middleware
from api.stream_limits import StreamLimits
from genesis import db
from genesis.auth.stream_tokens import StreamTokens
from genesis.auth.tokens import TokenVerifier
from genesis.listener import Listener
from genesis.migrate import require_migrated
from genesis.settings import Settings
from genesis.waits import watch

log = logging.getLogger("genesis.api")


def create_app(settings: Settings) -> web.Application:
    settings.require("database_url")
    app = web.Application(
        # Order matters: the span wraps everything, then the request id, metrics see the final status, CORS answers
        # preflights, errors are shaped inside it, auth runs last.
        middlewares=[
            server_span_middleware,  # the request's span (in the caller's trace): events store its context
            request_id_middleware,
            metrics.metrics_middleware,
            cors_middleware,
            error_middleware,
            auth_middleware,
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    # Headers every answer carries, set as its headers go out: an event stream's go out before its handler returns.
    app.on_response_prepare.append(request_id_header)
    app.on_response_prepare.append(cors_headers)
    app[state.SETTINGS] = settings
    app[state.VERIFIER] = TokenVerifier(settings)
    app[state.STREAM_TOKENS] = StreamTokens(settings)  # its key is checked here, at start-up
    app[state.STREAM_LIMITS] = StreamLimits(per_user=settings.sse_max_streams_per_user, total=settings.sse_max_streams)
    add_routes(app, health.routes)
    add_routes(app, metrics.routes)
    add_routes(app, sessions.routes)
    add_routes(app, events.routes)
    add_routes(app, stream_tokens.routes)
    add_routes(app, tasks.routes)
    add_routes(app, openapi.routes)
    add_routes(app, docs.routes)
    add_routes(app, asyncapi.routes)  # what agents consume from the topic
    console.setup(app, settings)  # the page; its dev-only token route only when settings.dev
    app.on_cleanup.append(_close_verifier)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_live_events)
    app.cleanup_ctx.append(metrics.outbox_gauges)
    return app


async def _close_verifier(app: web.Application) -> None:
    await app[state.VERIFIER].close()  # its JWKS client session, if any


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[state.SETTINGS]
    app[state.POOL] = await db.create_pool(
        settings.database_url,
        application_name="genesis-api",
        max_size=settings.db_pool_max,
        statement_cache_size=settings.db_statement_cache_size,
    )
    await require_migrated(app[state.POOL])  # refuses to start, in one line, rather than answer 500s
    # As many batches in flight as the pool has connections: each waits for one, like any request.
    app[state.BATCHER] = Batcher(app[state.POOL], drainers=settings.db_pool_max)
    yield
    await app[state.POOL].close()


async def _live_events(app: web.Application) -> AsyncIterator[None]:
    """One LISTEN connection for the whole process; every SSE stream shares it through the hub."""
    settings = app[state.SETTINGS]
    hub = app[state.HUB] = EventHub(app[state.POOL], buffer=settings.sse_buffer)
    listener = app[state.LISTENER] = Listener(
        settings.listen_dsn,
        [EVENTS_CHANNEL, PROGRESS_CHANNEL],
        on_notify=hub.notified,
        on_connect=hub.reconnected,
        application_name="genesis-api-listener",
    )
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_live_events(hub, listener, stop))
    yield
    stop.set()
    await watcher


async def _watch_live_events(hub: EventHub, listener: Listener, stop: asyncio.Event) -> None:
    try:
        await watch(stop, listener.run(stop), hub.run(stop), hub.reap(stop), hub.run_progress(stop))
    except Exception:
        # No stream would get another event: say so, and end them rather than let them heartbeat on.
        log.exception("live events stopped; event streams are refused until the API restarts")
    finally:
        hub.close()
