"""One transaction or nothing: a failure anywhere inside submit_command leaves no row behind, and a
serialization failure is retried rather than surfacing as a 5xx."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from api.app import create_app
from genesis import db, errors
from genesis.settings import Settings
from tests.integration.tables import Auth, Client, commands_url, row_counts
from tests.relay_harness import eventually, new_session, submit
from tests.relay_proxy import TcpProxy, dsn_via, pg_endpoint

AppClient = Callable[[web.Application], Any]

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
    session_id = await new_session(conn, "alice")
    pending = uuid.UUID(await submit(conn, session_id, "SubmitFeedback", {"feedback": "x"}, "alice"))
    await conn.execute("UPDATE command_inbox SET created_at = now() - interval '2 hours' WHERE id = $1", pending)
    await _break(conn, "event_outbox")
    before = await row_counts(conn)
    sid = uuid.UUID(session_id)
    calls: list[tuple[str, tuple[object, ...]]] = [
        ("SELECT * FROM submit_command($1, 'RequestConceptGeneration', '{}'::jsonb, 'alice')", (sid,)),
        ("SELECT * FROM submit_command($1, 'ConfirmStage', $2, 'alice')", (sid, {"stage": "CONCEPT_SELECTION"})),
        ("SELECT * FROM complete_command($1, 'COMPLETED', '{}'::jsonb)", (pending,)),
        ("SELECT expire_stale_commands(interval '1 hour')", ()),
        ("SELECT create_session('bob')", ()),
    ]
    for query, args in calls:
        with pytest.raises(asyncpg.RaiseError, match="injected failure on event_outbox"):
            await conn.fetch(query, *args)
        assert await row_counts(conn) == before, query
    assert await conn.fetchval("SELECT status FROM command_inbox WHERE id = $1", pending) == "RECEIVED"
    assert await conn.fetchval("SELECT status FROM async_tasks WHERE command_id = $1", pending) == "PENDING"
    assert await _session(conn, session_id) == ("IN_PROGRESS", "CONCEPT_SELECTION", 2)


async def test_a_serialization_failure_is_retried_not_a_5xx(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API's transaction takes its snapshot, then waits for the session lock held here; this
    # connection then moves the stage on and commits. At REPEATABLE READ the API's lock attempt is a
    # serialization failure, and only a retry, with a new snapshot, can answer STAGE_CONFLICT; at READ
    # COMMITTED (the pools' isolation since they send no startup parameter a pooler refuses) the locked
    # row is read again as it is now, and the first attempt answers it.
    outcomes = _watch_submit_command(monkeypatch)

    async def api_waits_for_the_lock() -> bool:
        return bool(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
            "genesis-api",
        ))  # fmt: skip

    transaction = conn.transaction()
    await transaction.start()
    await conn.execute("SELECT 1 FROM genesis_sessions WHERE id = $1 FOR UPDATE", uuid.UUID(session_id))
    request = asyncio.create_task(client.post(commands_url(session_id), json=SYNC, headers=auth()))
    try:
        await eventually(api_waits_for_the_lock, within=10, what="the API's backend waits for the session lock")
        await submit(conn, session_id, "ConfirmStage", {"stage": "CONCEPT_SELECTION"}, "alice")
    finally:
        await transaction.commit()
    response = await request
    body = await response.json()
    assert response.status == 409, body
    assert body["error_code"] == "STAGE_CONFLICT"
    assert body["current_stage"] == "STORY_CONCEPTION"
    # Any attempt before the last was a serialization failure; the last refused the stage.
    assert outcomes[-1] == "GS410", outcomes
    assert set(outcomes[:-1]) <= {"40001"}, outcomes


def _watch_submit_command(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQLSTATE (or "ok") of each attempt of the API's commands, as they come back: a whole batch's failure
    (api/batches.py calls submit_commands) or each command's own row."""
    outcomes: list[str] = []
    fetch = asyncpg.Connection.fetch

    async def watched(conn: asyncpg.Connection[Any], query: str, *args: Any, **kwargs: Any) -> Any:
        if "submit_commands" not in query:
            return await fetch(conn, query, *args, **kwargs)
        try:
            rows = await fetch(conn, query, *args, **kwargs)
        except asyncpg.PostgresError as exc:
            outcomes.append(str(exc.sqlstate))
            raise
        outcomes.extend(row["error_sqlstate"] or "ok" for row in rows)
        return rows

    monkeypatch.setattr(asyncpg.Connection, "fetch", watched)
    return outcomes


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


# A function whose attempts fail with the SQLSTATEs given, one per attempt (none left: it succeeds). Each
# attempt first writes a row; the sequence is not rolled back, so it counts the attempts.
ATTEMPT = """
    CREATE SEQUENCE test_attempts;
    CREATE TABLE test_attempt_rows (attempt bigint NOT NULL);
    CREATE FUNCTION test_attempt(_errcodes text[]) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
        _n bigint := nextval('test_attempts');
    BEGIN
        INSERT INTO test_attempt_rows VALUES (_n);
        IF _errcodes[_n] IS NOT NULL THEN
            PERFORM genesis_refuse(_errcodes[_n], 'injected', '{"current_stage": "X"}');
        END IF;
        RETURN _n;
    END $$;
"""


async def test_call_retries_serialization_failures_and_deadlocks(
    database_url: str, conn: asyncpg.Connection[Any]
) -> None:
    await conn.execute(ATTEMPT)
    pool = await db.create_pool(database_url, application_name="test", max_size=2)

    async def attempts(errcodes: list[str]) -> Any:
        await conn.execute("ALTER SEQUENCE test_attempts RESTART")
        return await db.call(pool, "SELECT test_attempt($1) AS attempt", errcodes)

    async def counted() -> tuple[int, list[int]]:
        made = await conn.fetchval("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM test_attempts")
        return made, [r["attempt"] for r in await conn.fetch("SELECT attempt FROM test_attempt_rows")]

    try:
        row = await attempts(["40001", "40P01"])
        assert row is not None
        assert row["attempt"] == 3
        # Three attempts; the two that failed rolled back their rows, the third committed its one.
        assert await counted() == (3, [3])

        with pytest.raises(errors.Busy) as caught:
            await attempts(["40001"] * (db.SERIALIZATION_RETRIES + 5))
        assert (caught.value.status, caught.value.error_code) == (503, "SERVICE_BUSY")
        assert await counted() == (db.SERIALIZATION_RETRIES, [3])

        # A refusal is the caller's answer: not run again.
        with pytest.raises(errors.StageConflict) as conflict:
            await attempts(["GS410"])
        assert conflict.value.fields == {"current_stage": "X"}
        assert await counted() == (1, [3])
    finally:
        await pool.close()


async def test_a_database_the_api_cannot_reach_is_a_json_503_until_it_is_back(
    settings: Settings, aiohttp_client: AppClient, auth: Auth
) -> None:
    # The API's pool reaches the database through a proxy; cutting it resets its connections and
    # refuses new ones (the LISTEN connection, not used here, stays direct).
    proxy = TcpProxy(pg_endpoint(settings.database_url))
    await proxy.start()
    try:
        proxied = dataclasses.replace(settings, database_url=dsn_via(settings.database_url, proxy.port))
        client: Client = await aiohttp_client(create_app(proxied))
        created = await client.post("/genesis/sessions", headers=auth())
        assert created.status == 201
        session_id = (await created.json())["id"]

        await proxy.cut()
        response = await client.post(commands_url(session_id), json=SYNC, headers=auth())
        assert response.status == 503
        assert await response.json() == {
            "error_code": "SERVICE_UNAVAILABLE",
            "message": "The database is unavailable; try again",
        }
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["status"] == "unavailable"

        await proxy.restore()

        async def ready_again() -> bool:
            return (await client.get("/readyz")).status == 200

        await eventually(ready_again, within=10, what="ready once the database is reachable again")
        response = await client.post(commands_url(session_id), json=SYNC, headers=auth())
        assert response.status == 200, await response.text()
    finally:
        await proxy.cut()
