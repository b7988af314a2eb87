"""The session says what is in flight (CONTRACT §4): `is_pending` and `pending_commands`, over HTTP and from psql."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from tests.integration.tables import Auth, Client, commands_url
from tests.relay_harness import complete, submit


async def _session(client: Client, auth: Auth, session_id: str) -> dict[str, Any]:
    response = await client.get(f"/genesis/sessions/{session_id}", headers=auth())
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def test_the_session_lists_its_pending_commands_until_they_settle(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    idle = await _session(client, auth, session_id)
    assert (idle["is_pending"], idle["pending_commands"]) == (False, [])

    sent = []
    for command_type, payload in (("RequestConceptGeneration", {}), ("SubmitFeedback", {"feedback": "more"})):
        response = await client.post(
            commands_url(session_id), json={"command_type": command_type, "payload": payload}, headers=auth()
        )
        assert response.status == 202
        sent.append({"id": (await response.json())["command_id"], "type": command_type})
    busy = await _session(client, auth, session_id)
    assert busy["is_pending"] is True
    assert busy["pending_commands"] == sent  # oldest first

    await conn.execute("UPDATE command_inbox SET status = 'PROCESSING' WHERE id = $1", uuid.UUID(sent[0]["id"]))
    assert (await _session(client, auth, session_id))["pending_commands"] == sent  # PROCESSING is in flight too
    await complete(conn, sent[0]["id"])
    assert (await _session(client, auth, session_id))["pending_commands"] == sent[1:]
    await complete(conn, sent[1]["id"], "FAILED")
    settled = await _session(client, auth, session_id)
    assert (settled["is_pending"], settled["pending_commands"]) == (False, [])


async def test_a_sync_answer_and_a_psql_caller_see_the_same_fields(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    command_id = await submit(conn, session_id, "RequestConceptGeneration", {}, "alice")
    response = await client.post(
        commands_url(session_id),
        json={"command_type": "ConfirmStage", "payload": {"stage": "CONCEPT_SELECTION"}},
        headers=auth(),
    )
    assert response.status == 200
    session = (await response.json())["session"]  # the sync answer carries the session, in flight included
    pending = [{"id": command_id, "type": "RequestConceptGeneration"}]
    assert (session["is_pending"], session["pending_commands"]) == (True, pending)

    from_psql = await conn.fetchval("SELECT get_session($1, 'alice')", uuid.UUID(session_id))
    assert (from_psql["is_pending"], from_psql["pending_commands"]) == (True, pending)


async def test_the_pending_commands_are_read_through_the_pending_index(conn: asyncpg.Connection[Any]) -> None:
    """The session JSON is on the hot path (every sync answer): its lookup reads neither the session's history nor
    the other sessions' commands in flight."""
    session_id = await conn.fetchval("SELECT (create_session('alice'))->>'id'")
    await conn.execute(  # its history of settled commands
        "INSERT INTO command_inbox (session_id, user_id, command_type, status)"
        " SELECT $1, 'alice', 'SubmitFeedback', 'COMPLETED' FROM generate_series(1, 50)",
        uuid.UUID(session_id),
    )
    await conn.execute(  # a busy service: 2,000 other sessions, each with a history and a command in flight
        "WITH s AS (INSERT INTO genesis_sessions (user_id) SELECT 'bob' FROM generate_series(1, 2000) RETURNING id)"
        " INSERT INTO command_inbox (session_id, user_id, command_type, status)"
        " SELECT id, 'bob', 'SubmitFeedback', CASE WHEN n = 0 THEN 'RECEIVED' ELSE 'COMPLETED' END"
        "   FROM s, generate_series(0, 5) n"
    )
    await conn.execute("ANALYZE command_inbox")
    rows = await conn.fetch(
        "EXPLAIN SELECT c.id FROM command_inbox c WHERE c.session_id = $1 AND c.status IN ('RECEIVED', 'PROCESSING')",
        uuid.UUID(session_id),
    )
    plan = "\n".join(r[0] for r in rows)
    assert "idx_command_inbox_unique_pending_command" in plan, plan
    assert "Seq Scan" not in plan, plan
