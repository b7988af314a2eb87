"""Probes: liveness, and readiness (the database answers)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from api import state

routes = web.RouteTableDef()


@routes.get("/healthz", name="healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz", name="readyz")
async def readyz(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(2):
            await request.app[state.POOL].fetchval("SELECT 1")
    except Exception as exc:  # any failure means: do not send traffic here
        return web.json_response(
            {"status": "unavailable", "checks": {"database": f"{type(exc).__name__}: {exc}"}}, status=503
        )
    return web.json_response({"status": "ok", "checks": {"database": "ok"}})
