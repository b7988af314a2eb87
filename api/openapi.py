"""The OpenAPI 3.1 description of the API (GET /openapi.json): the operations (api/openapi_paths.py) and their
schemas (api/openapi_schemas.py). /docs renders it (api/docs.py); clients/typescript generates its types from it."""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from api.openapi_paths import errors, service, sessions, tasks
from api.openapi_schemas import schemas
from api.openapi_waits import wait_paths, wait_schemas
from genesis.auth.tokens import AGENT_SCOPE

routes = web.RouteTableDef()

_TAGS = [
    {"name": "Sessions", "description": "A Genesis session: its stage, data and what is in flight"},
    {"name": "Commands", "description": "Every user intent is a command sent to one endpoint"},
    {"name": "Events", "description": "What the commands caused: read a page at a time, or follow live (SSE)"},
    {"name": "Agents", "description": f"The routes agents report back on (tokens with scope {AGENT_SCOPE})"},
    {"name": "Service", "description": "Probes, metrics, this document and the developer console (no token)"},
]
_DESCRIPTION = """\
Send a command, get 200 / 202 / 409; read what it caused.

Authenticate with `Authorization: Bearer <JWT>` (its `sub` is the user; a session belongs to the user who created it,
and to anyone else it does not exist). Every error is JSON: `{"error_code", "message", ...}`.
"""


@functools.cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Genesis command service", "version": "1.0.0", "description": _DESCRIPTION},
        "tags": _TAGS,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "streamToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "stream_token",
                    "description": "From POST /genesis/sessions/{session_id}/stream-tokens; the event stream only",
                },
            },
            "schemas": {**schemas(), **wait_schemas()},
        },
        "paths": _unreadable({**sessions(), **tasks(), **wait_paths(), **service()}),
    }


def _unreadable(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation may get a 400: a request line or head the HTTP parser refuses is answered before any route
    is matched (api/server.py), whichever route it was meant for."""
    for item in paths.values():
        for method in ("get", "post", "put", "patch", "delete", "options"):
            if method in item:
                item[method]["responses"].setdefault("400", errors(400)["400"])
    return paths


@routes.get("/openapi.json", name="openapi")
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document())
