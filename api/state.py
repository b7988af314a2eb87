"""Typed application state shared by the API's modules."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from api.batches import Batcher
from api.live import EventHub
from api.stream_limits import StreamLimits
from genesis.auth.stream_tokens import StreamTokens
from genesis.auth.tokens import Principal, TokenVerifier
from genesis.listener import Listener
from genesis.settings import Settings
from genesis.telemetry.outbox_gauges import OutboxGauges

SETTINGS = web.AppKey("settings", Settings)
POOL: web.AppKey[asyncpg.Pool[Any]] = web.AppKey("pool")
BATCHER = web.AppKey("batcher", Batcher)  # group commit of submitted commands
VERIFIER = web.AppKey("verifier", TokenVerifier)
STREAM_TOKENS = web.AppKey("stream_tokens", StreamTokens)
HUB = web.AppKey("hub", EventHub)
LISTENER = web.AppKey("listener", Listener)
STREAM_LIMITS = web.AppKey("stream_limits", StreamLimits)
OUTBOX_GAUGES = web.AppKey("outbox_gauges", OutboxGauges)

# Per-request values.
USER_ID = web.RequestKey("user_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)  # the verified token: user id, scopes, expiry
REQUEST_ID = web.RequestKey("request_id", str)

# Routes anyone may call: probes, metrics, the API description and the developer console's page and files
# (everything the console calls needs a token; console_token exists only in development mode).
PUBLIC_ROUTES = frozenset(
    {
        "healthz",
        "readyz",
        "metrics",
        "openapi",
        "asyncapi",
        "docs",
        "docs_static",
        "console",
        "console_static",
        "console_token",
    }
)
