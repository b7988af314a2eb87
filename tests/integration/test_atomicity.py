"""One transaction or nothing: a failure anywhere inside submit_command leaves no row behind, and a
serialization failure is retried rather than surfacing as a 5xx."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest

from api import state
from genesis import db, errors
from tests.integration.tables import Auth, Client, commands_url, row_counts

ASYNC = {"command_type": "RequestConceptGeneration", "payload": {"count": 2}}
SYNC = {"command_type": "ConfirmStage", "payload": {"stage": "CONCEPT_SELECTION"}}


async def _break(conn: asyncpg.Connection[Any], table: str) -> None:
    """A test-only trigger that makes every insert into `table` fail (this test's database only)."""
    await conn.execute(
        f"""CREATE FUNCTION test_boom() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'injected failure on %', TG_TABLE_NAME; END $$;
            CREATE TRIGGER test_boom BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION test_boom();"""
    )


async def _session(conn: asyncpg.Connection[Any], session_id: str) -> tuple[str, str, int]:
    row = await conn.fetchrow(
        "SELECT status, stage, version FROM genesis_sessions WHERE id = $1", uuid.UUID(session_id)
    )
    assert row is not None
    return row["status"], row["stage"], row["version"]


@pytest.mark.parametrize(
    ("table", "request_body"),
    [("event_outbox", ASYNC), ("event_outbox", SYNC), ("domain_events", SYNC), ("async_tasks", ASYNC)],
    ids=["outbox-async", "outbox-sync", "events-sync", "tasks-async"],
)
async def test_a_failing_insert_over_http_is_a_json_500_and_leaves_nothing(
    client: Client,
    auth: Auth,
    session_id: str,
    conn: asyncpg.Connection[Any],
    table: str,
    request_body: dict[str, Any],
) -> None:
    session_before = await _session(conn, session_id)
    await _break(conn, table)
    before = await row_counts(conn)
    response = await client.post(commands_url(session_id), json=request_body, headers=auth())
    assert response.status == 500
    assert response.content_type == "application/json"
    text = await response.text()
    assert json.loads(text) == {"error_code": "INTERNAL_ERROR", "message": "Internal error"}
    assert "Traceback" not in text
    assert "injected" not in text
    assert await row_counts(conn) == before
    assert await _session(conn, session_id) == session_before


async def test_a_failing_session_create_leaves_nothing(
    client: Client, auth: Auth, conn: asyncpg.Connection[Any]
) -> None:
    await _break(conn, "event_outbox")
    before = await row_counts(conn)
    response = await client.post("/genesis/sessions", headers=auth())
    assert response.status == 500
    assert (await response.json())["error_code"] == "INTERNAL_ERROR"
    assert await row_counts(conn) == before


async def test_the_psql_path_is_atomic_too(conn: asyncpg.Connection[Any]) -> None:
    session = await conn.fetchval("SELECT create_session('alice')")
    pending = await conn.fetchrow(
        "SELECT * FROM submit_command($1, 'SubmitFeedback', $2, 'alice')", uuid.UUID(session["id"]), {"feedback": "x"}
    )
    assert pending is not None
    await conn.execute("UPDATE command_inbox SET created_at = now() - interval '2 hours' WHERE id = $1",
                       pending["command_id"])  # fmt: skip
    await _break(conn, "event_outbox")
    before = await row_counts(conn)
    sid = uuid.UUID(session["id"])
    calls: list[tuple[str, tuple[object, ...]]] = [
        ("SELECT * FROM submit_command($1, 'RequestConceptGeneration', '{}'::jsonb, 'alice')", (sid,)),
        ("SELECT * FROM submit_command($1, 'ConfirmStage', $2, 'alice')", (sid, {"stage": "CONCEPT_SELECTION"})),
        ("SELECT * FROM complete_command($1, 'COMPLETED', '{}'::jsonb)", (pending["command_id"],)),
        ("SELECT expire_stale_commands(interval '1 hour')", ()),
        ("SELECT create_session('bob')", ()),
    ]
    for query, args in calls:
        with pytest.raises(asyncpg.RaiseError, match="injected failure on event_outbox"):
            await conn.fetch(query, *args)
        assert await row_counts(conn) == before, query
    status = await conn.fetchval("SELECT status FROM command_inbox WHERE id = $1", pending["command_id"])
    assert status == "RECEIVED"
    assert await conn.fetchval("SELECT status FROM async_tasks WHERE command_id = $1", pending["command_id"]) == (
        "PENDING"
    )
    assert await _session(conn, session["id"]) == ("IN_PROGRESS", "CONCEPT_SELECTION", 2)


async def _wait_for_lock_waiter(conn: asyncpg.Connection[Any], application_name: str) -> None:
    for _ in range(200):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
            application_name,
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {application_name} backend ever waited for the session lock")


async def test_a_serialization_failure_is_retried_not_a_5xx(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    # The API's transaction takes its snapshot, then waits for the session lock held here; this
    # connection then moves the stage on and commits, so the API's lock attempt is a serialization
    # failure (REPEATABLE READ). Only a retry, with a new snapshot, can answer STAGE_CONFLICT.
    transaction = conn.transaction()
    await transaction.start()
    await conn.execute("SELECT 1 FROM genesis_sessions WHERE id = $1 FOR UPDATE", uuid.UUID(session_id))
    request = asyncio.create_task(client.post(commands_url(session_id), json=SYNC, headers=auth()))
    try:
        await _wait_for_lock_waiter(conn, "genesis-api")
        await conn.fetch(
            "SELECT * FROM submit_command($1, 'ConfirmStage', $2, 'alice')",
            uuid.UUID(session_id),
            {"stage": "CONCEPT_SELECTION"},
        )
    finally:
        await transaction.commit()
    response = await request
    body = await response.json()
    assert response.status == 409, body
    assert body["error_code"] == "STAGE_CONFLICT"
    assert body["current_stage"] == "STORY_CONCEPTION"


async def test_concurrent_confirmations_one_wins_the_rest_conflict(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    headers = auth()

    async def send() -> tuple[int, str]:
        response = await client.post(commands_url(session_id), json=SYNC, headers=headers)
        body = await response.json()
        return response.status, body.get("error_code", "")

    results = await asyncio.gather(*(send() for _ in range(10)))
    assert sorted(results) == [(200, "")] + [(409, "STAGE_CONFLICT")] * 9
    assert await conn.fetchval("SELECT count(*) FROM command_inbox WHERE command_type = 'ConfirmStage'") == 1
    assert await _session(conn, session_id) == ("IN_PROGRESS", "STORY_CONCEPTION", 2)


async def test_transact_retries_serialization_failures_and_deadlocks(database_url: str) -> None:
    pool = await db.create_pool(database_url, application_name="test", kafka_topic="t", max_size=2)
    try:
        attempts: list[int] = []

        async def flaky(conn: db.Conn) -> int:
            attempts.append(1)
            await conn.execute("INSERT INTO flow_resume_handles (correlation_id, session_id, expires_at) "
                               "SELECT gen_random_uuid(), id, now() FROM genesis_sessions")  # fmt: skip
            if len(attempts) == 1:
                await conn.execute("SELECT genesis_refuse('40001', 'could not serialize')")
            if len(attempts) == 2:
                await conn.execute("SELECT genesis_refuse('40P01', 'deadlock detected')")
            return len(attempts)

        await pool.execute("SELECT create_session('carol')")
        assert await db.transact(pool, flaky) == 3
        # The two failed attempts rolled back their rows; the third committed its one.
        assert await pool.fetchval("SELECT count(*) FROM flow_resume_handles") == 1

        async def hopeless(conn: db.Conn) -> None:
            await conn.execute("SELECT genesis_refuse('40001', 'could not serialize')")

        with pytest.raises(errors.Busy) as caught:
            await db.transact(pool, hopeless)
        assert (caught.value.status, caught.value.error_code) == (503, "SERVICE_BUSY")

        async def refused(conn: db.Conn) -> None:
            await conn.execute("SELECT genesis_refuse('GS410', 'no', '{\"current_stage\": \"X\"}')")

        with pytest.raises(errors.StageConflict) as conflict:
            await db.transact(pool, refused)
        assert conflict.value.fields == {"current_stage": "X"}
    finally:
        await pool.close()


async def test_a_database_that_is_gone_is_a_json_503(client: Client, auth: Auth, session_id: str) -> None:
    # Closing the app's pool stands for a database it cannot reach: requests fail fast and say so.
    await client.app[state.POOL].close()
    response = await client.post(commands_url(session_id), json=SYNC, headers=auth())
    assert response.status == 503
    assert await response.json() == {
        "error_code": "SERVICE_UNAVAILABLE",
        "message": "The database is unavailable; try again",
    }
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["status"] == "unavailable"
