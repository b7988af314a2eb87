"""Helpers shared by the integration tests: row counts of the six tables, sessions and stage walking over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.relay_harness import STAGES as STAGES  # re-exported: the command tests import it from here

Client = TestClient[web.Request, web.Application]
Auth = Callable[..., dict[str, str]]

TABLES = (
    "genesis_sessions",
    "command_inbox",
    "domain_events",
    "event_outbox",
    "async_tasks",
    "flow_resume_handles",
)


async def row_counts(conn: asyncpg.Connection[Any]) -> dict[str, int]:
    """How many rows each of the six tables holds (a refused request must change none)."""
    return {table: await conn.fetchval(f"SELECT count(*) FROM {table}") for table in TABLES}


async def create_session(client: Client, headers: dict[str, str]) -> str:
    """Creates a session over HTTP; its id."""
    response = await client.post("/genesis/sessions", headers=headers)
    body: dict[str, Any] = await response.json()
    assert response.status == 201, body
    return str(body["id"])


def commands_url(session_id: str) -> str:
    return f"/genesis/sessions/{session_id}/commands"


async def confirm(client: Client, headers: dict[str, str], session_id: str, stage: str) -> dict[str, Any]:
    """Confirms `stage` of the session; the body of the 200 answer."""
    response = await client.post(
        commands_url(session_id),
        json={"command_type": "ConfirmStage", "payload": {"stage": stage, "data": {"note": stage.lower()}}},
        headers=headers,
    )
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


async def finish(client: Client, headers: dict[str, str], session_id: str) -> dict[str, Any]:
    """Confirms all five stages; the body of the last answer (the session is then COMPLETED)."""
    body: dict[str, Any] = {}
    for stage in STAGES:
        body = await confirm(client, headers, session_id, stage)
    return body
