"""The aiohttp application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from api import health, sessions, state
from api.middlewares import auth_middleware, error_middleware, request_id_middleware
from api.requests import MAX_BODY_BYTES
from genesis import db
from genesis.settings import Settings
from genesis.tokens import TokenVerifier


def create_app(settings: Settings) -> web.Application:
    settings.require("database_url")
    app = web.Application(
        # Order matters: the request id wraps everything, errors are shaped inside it, auth runs last.
        middlewares=[request_id_middleware, error_middleware, auth_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[state.SETTINGS] = settings
    app[state.VERIFIER] = TokenVerifier(settings)
    app.router.add_routes(health.routes)
    app.router.add_routes(sessions.routes)
    app.cleanup_ctx.append(_database)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[state.SETTINGS]
    app[state.POOL] = await db.create_pool(
        settings.database_url,
        application_name="genesis-api",
        kafka_topic=settings.kafka_topic,
        max_size=settings.db_pool_max,
    )
    yield
    await app[state.POOL].close()
