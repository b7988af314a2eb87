"""The command path over HTTP against a real PostgreSQL: status codes, bodies, and what is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]
Auth = Callable[..., dict[str, str]]


async def test_async_command_is_accepted_with_its_event_outbox_and_task(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    response = await client.post(
        f"/genesis/sessions/{session_id}/commands",
        json={"command_type": "RequestConceptGeneration", "payload": {"count": 2}},
        headers=auth(),
    )
    assert response.status == 202
    body = await response.json()
    assert body["status"] == "RECEIVED"
    assert response.headers["Location"] == f"/genesis/sessions/{session_id}/commands/{body['command_id']}"

    event = await conn.fetchrow(
        "SELECT * FROM domain_events WHERE correlation_id = $1", __import__("uuid").UUID(body["command_id"])
    )
    assert event is not None
    assert event["event_type"] == "Genesis.Session.ConceptGenerationRequested"
    assert event["aggregate_version"] == 2
    assert await conn.fetchval("SELECT count(*) FROM event_outbox WHERE event_id = $1", event["event_id"]) == 1
    assert await conn.fetchval("SELECT count(*) FROM async_tasks WHERE command_id = $1", event["correlation_id"]) == 1


async def test_fifty_identical_commands_one_accepted_and_49_exact_409(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    headers = auth()
    request = {"command_type": "RequestConceptGeneration", "payload": {}}

    async def send() -> tuple[int, dict[str, Any]]:
        response = await client.post(f"/genesis/sessions/{session_id}/commands", json=request, headers=headers)
        return response.status, await response.json()

    results = await asyncio.gather(*(send() for _ in range(50)))
    accepted = [body for status, body in results if status == 202]
    refused = [body for status, body in results if status == 409]
    assert len(accepted) == 1
    assert len(refused) == 49
    winner = accepted[0]["command_id"]
    for body in refused:
        assert body == {
            "error_code": "DUPLICATE_COMMAND",
            "message": "Command already processing",
            "duplicate_command_id": winner,
        }
    assert (
        await conn.fetchval("SELECT count(*) FROM command_inbox WHERE command_type = 'RequestConceptGeneration'") == 1
    )
