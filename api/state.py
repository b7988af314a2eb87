"""Typed application state shared by the API's modules."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from genesis.settings import Settings
from genesis.tokens import TokenVerifier

SETTINGS = web.AppKey("settings", Settings)
POOL: web.AppKey[asyncpg.Pool[Any]] = web.AppKey("pool")
VERIFIER = web.AppKey("verifier", TokenVerifier)

# Per-request values.
USER_ID = web.RequestKey("user_id", str)
REQUEST_ID = web.RequestKey("request_id", str)

# Routes anyone may call: probes, metrics and the API description.
PUBLIC_ROUTES = frozenset({"healthz", "readyz", "metrics", "openapi"})
