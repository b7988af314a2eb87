"""Resume handles (issue 25) from psql: park, idempotent park, one open handle per flow, resume by the next
expected command in submit_command's transaction (metadata.resumes on the event and its outbox row), the race of
a resume before the pause, expiry with its event, the `waiting` list of the session JSON, a closed session, and a
resume inside a batch of group commit."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from genesis import db

HANDLE = {"concepts": [{"title": "A"}]}


async def _row(conn: asyncpg.Connection[Any], query: str, *args: object) -> Any:
    return await conn.fetchrow(query, *args)


async def _session_with_request(conn: asyncpg.Connection[Any]) -> tuple[str, str]:
    session = (await conn.fetchval("SELECT create_session('alice')"))["id"]
    row = await _row(
        conn, "SELECT * FROM submit_command($1::uuid, 'RequestConceptGeneration', '{}'::jsonb, 'alice')", session
    )
    return str(session), str(row["command_id"])


async def _park(conn: asyncpg.Connection[Any], command_id: str, handle: Any = None, seconds: int = 3600) -> Any:
    return await _row(
        conn,
        "SELECT * FROM park_flow($1::uuid, $2::jsonb, $3, $4::text[])",
        command_id,
        HANDLE if handle is None else handle,
        seconds,
        ["SubmitFeedback"],
    )


async def _feedback(conn: asyncpg.Connection[Any], session: str, text: str = "more") -> Any:
    return await _row(
        conn,
        "SELECT * FROM submit_command($1::uuid, 'SubmitFeedback', $2::jsonb, 'alice')",
        session,
        {"feedback": text},
    )


async def test_park_is_idempotent_and_one_flow_has_one_open_handle(conn: asyncpg.Connection[Any]) -> None:
    session, command = await _session_with_request(conn)
    first = await _park(conn, command)
    assert first["created"]
    assert first["handle"]["status"] == "PAUSED"
    again = await _park(conn, command)
    assert not again["created"]
    assert again["handle"] == first["handle"]
    with pytest.raises(asyncpg.PostgresError) as refused:
        await _park(conn, command, handle={"other": 1})
    assert refused.value.sqlstate == "GS413"
    assert await conn.fetchval("SELECT count(*) FROM flow_resume_handles") == 1
    waiting = (await conn.fetchval("SELECT get_session($1::uuid, 'alice')", session))["waiting"]
    assert [w["handle_id"] for w in waiting] == [first["handle"]["handle_id"]]


async def test_the_next_expected_command_resumes_the_flow_in_its_transaction(conn: asyncpg.Connection[Any]) -> None:
    session, command = await _session_with_request(conn)
    handle = (await _park(conn, command))["handle"]
    answer = await _feedback(conn, session)
    row = await _row(conn, "SELECT * FROM flow_resume_handles WHERE id = $1::uuid", handle["handle_id"])
    assert row["status"] == "RESUMED"
    assert row["resumed_by"] == answer["command_id"]
    assert row["resume_payload"] == {"feedback": "more"}
    expected = {"handle_id": handle["handle_id"], "correlation_id": command, "resume_handle": HANDLE}
    event = await _row(conn, "SELECT * FROM domain_events WHERE event_id = $1", answer["event_ids"][0])
    assert event["metadata"]["resumes"] == expected
    outbox = await conn.fetchval("SELECT payload FROM event_outbox WHERE event_id = $1", answer["event_ids"][0])
    assert outbox["metadata"]["resumes"] == expected
    assert (await conn.fetchval("SELECT get_session($1::uuid, 'alice')", session))["waiting"] == []


async def test_a_command_that_is_not_expected_does_not_resume(conn: asyncpg.Connection[Any]) -> None:
    session, command = await _session_with_request(conn)
    handle = (await _park(conn, command, seconds=60))["handle"]
    await _row(
        conn,
        "SELECT * FROM submit_command($1::uuid, 'ConfirmStage', $2::jsonb, 'alice')",
        session,
        {"stage": "CONCEPT_SELECTION"},
    )
    status = await conn.fetchval("SELECT status FROM flow_resume_handles WHERE id = $1::uuid", handle["handle_id"])
    assert status == "PAUSED"


async def test_a_refused_command_leaves_the_handle_paused(conn: asyncpg.Connection[Any]) -> None:
    session, command = await _session_with_request(conn)
    handle = (await _park(conn, command))["handle"]
    await _feedback(conn, session)  # resumes, and stays pending: the next SubmitFeedback is a duplicate
    second_command = await _park_second(conn, session)
    with pytest.raises(asyncpg.PostgresError) as refused:
        await _feedback(conn, session, "again")
    assert refused.value.sqlstate == "GS409"
    status = await conn.fetchval("SELECT status FROM flow_resume_handles WHERE id = $1::uuid", second_command)
    assert status == "PAUSED"
    assert handle["handle_id"] != second_command


async def _park_second(conn: asyncpg.Connection[Any], session: str) -> str:
    # A second flow of the session (a fresh RequestConceptGeneration after the first one settled) waits too.
    first = await conn.fetchval(
        "SELECT id FROM command_inbox WHERE session_id = $1::uuid AND command_type = 'RequestConceptGeneration'",
        session,
    )
    await _row(conn, "SELECT * FROM complete_command($1, 'COMPLETED', '{}'::jsonb)", first)
    row = await _row(
        conn, "SELECT * FROM submit_command($1::uuid, 'RequestConceptGeneration', '{}'::jsonb, 'alice')", session
    )
    return str((await _park(conn, str(row["command_id"])))["handle"]["handle_id"])


async def test_a_resume_before_the_pause_creates_the_handle_resumed(conn: asyncpg.Connection[Any]) -> None:
    session, command = await _session_with_request(conn)
    answer = await _feedback(conn, session)
    parked = await _park(conn, command)
    handle = parked["handle"]
    assert handle["status"] == "RESUMED"
    assert handle["resumed_by"] == str(answer["command_id"])
    assert handle["resume_payload"] == {"feedback": "more"}
    assert (await _park(conn, command))["handle"] == handle  # the agent's retry gets the same answer


async def test_the_sweep_expires_a_paused_handle_with_its_event(conn: asyncpg.Connection[Any]) -> None:
    session, command = await _session_with_request(conn)
    handle = (await _park(conn, command, seconds=1))["handle"]
    await conn.execute("UPDATE flow_resume_handles SET expires_at = now() - interval '1 second'")
    # Past its expiry, before the sweep: no command resumes it, so the session no longer lists it.
    assert (await conn.fetchval("SELECT get_session($1::uuid, 'alice')", session))["waiting"] == []
    assert await conn.fetchval("SELECT expire_flow_handles()") == 1
    assert await conn.fetchval("SELECT expire_flow_handles()") == 0
    assert await conn.fetchval("SELECT status FROM flow_resume_handles") == "EXPIRED"
    event = await _row(
        conn,
        "SELECT * FROM domain_events WHERE event_type = 'Genesis.Session.Flow.Failed' AND aggregate_id = $1::uuid",
        session,
    )
    assert event["payload"] == {"correlation_id": command, "handle_id": handle["handle_id"], "reason": "EXPIRED"}
    assert await conn.fetchval("SELECT count(*) FROM event_outbox WHERE event_id = $1", event["event_id"]) == 1
    assert (await _feedback(conn, session))["command_id"]  # an expired flow is not resumed
    assert await conn.fetchval("SELECT status FROM flow_resume_handles") == "EXPIRED"


async def test_concurrent_parks_leave_one_open_handle(database_url: str, conn: asyncpg.Connection[Any]) -> None:
    _, command = await _session_with_request(conn)
    go = asyncio.Event()

    async def park(n: int) -> str:
        c = await db.connect(database_url, application_name="genesis-agent")
        try:
            await go.wait()
            row = await _park(c, command, handle={"n": n % 2})
            return "created" if row["created"] else "same"
        except asyncpg.PostgresError as exc:
            return exc.sqlstate
        finally:
            await c.close()

    tasks = [asyncio.create_task(park(n)) for n in range(12)]
    await asyncio.sleep(0.3)
    go.set()
    outcomes = await asyncio.gather(*tasks)
    assert outcomes.count("created") == 1, outcomes
    assert outcomes.count("same") == 5, outcomes
    assert outcomes.count("GS413") == 6, outcomes
    assert await conn.fetchval("SELECT count(*) FROM flow_resume_handles") == 1


async def test_a_connection_lost_before_commit_leaves_the_handle_paused(
    database_url: str, conn: asyncpg.Connection[Any]
) -> None:
    session, command = await _session_with_request(conn)
    handle = (await _park(conn, command))["handle"]
    user = await db.connect(database_url, application_name="genesis-api")
    await user.execute("BEGIN")
    await _feedback(user, session)
    inside = await user.fetchval("SELECT status FROM flow_resume_handles WHERE id = $1::uuid", handle["handle_id"])
    assert inside == "RESUMED"
    pid = await user.fetchval("SELECT pg_backend_pid()")
    await conn.execute("SELECT pg_terminate_backend($1)", pid)
    user.terminate()
    after = await _row(
        conn, "SELECT status, resumed_by FROM flow_resume_handles WHERE id = $1::uuid", handle["handle_id"]
    )
    assert after["status"] == "PAUSED"
    assert after["resumed_by"] is None
    assert await conn.fetchval("SELECT count(*) FROM command_inbox WHERE command_type = 'SubmitFeedback'") == 0


async def test_a_command_refused_by_the_stage_rules_does_not_resume(conn: asyncpg.Connection[Any]) -> None:
    session, command = await _session_with_request(conn)
    row = await _row(conn, "SELECT * FROM park_flow($1::uuid, $2::jsonb, 60, ARRAY['ConfirmStage'])", command, HANDLE)
    with pytest.raises(asyncpg.PostgresError) as refused:
        await _row(
            conn,
            "SELECT * FROM submit_command($1::uuid, 'ConfirmStage', $2::jsonb, 'alice')",
            session,
            {"stage": "WORLDVIEW"},
        )
    assert refused.value.sqlstate == "GS410"
    status = await conn.fetchval(
        "SELECT status FROM flow_resume_handles WHERE id = $1::uuid", row["handle"]["handle_id"]
    )
    assert status == "PAUSED"
    confirmed = await _row(
        conn,
        "SELECT * FROM submit_command($1::uuid, 'ConfirmStage', $2::jsonb, 'alice')",
        session,
        {"stage": "CONCEPT_SELECTION"},
    )
    resumed_by = await conn.fetchval(
        "SELECT resumed_by FROM flow_resume_handles WHERE id = $1::uuid", row["handle"]["handle_id"]
    )
    assert resumed_by == confirmed["command_id"]


async def test_a_closed_session_takes_no_new_handle_but_a_retry_still_answers(conn: asyncpg.Connection[Any]) -> None:
    session, command = await _session_with_request(conn)
    await _park(conn, command)
    await _feedback(conn, session)  # resumed: the flow is no longer waiting
    await conn.execute("UPDATE genesis_sessions SET status = 'ABANDONED' WHERE id = $1::uuid", session)
    retry = (await _park(conn, command))["handle"]  # the agent's retry of the park that landed
    assert retry["status"] == "RESUMED"
    with pytest.raises(asyncpg.PostgresError) as refused:
        await _park(conn, command, handle={"another": "wait"})
    assert refused.value.sqlstate == "GS411"  # 409 SESSION_CLOSED: no command could resume it
    assert await conn.fetchval("SELECT count(*) FROM flow_resume_handles") == 1


async def test_a_batch_resumes_the_flow_beside_refused_neighbours(conn: asyncpg.Connection[Any]) -> None:
    session, command = await _session_with_request(conn)
    other, _ = await _session_with_request(conn)
    handle = (await _park(conn, command))["handle"]

    def feedback(target: str, command_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"session_id": target, "command_type": command_type, "payload": payload, "user_id": "alice"}

    rows = await conn.fetch(
        "SELECT * FROM submit_commands($1::jsonb) ORDER BY ordinal",
        [
            feedback(other, "ConfirmStage", {"stage": "WORLDVIEW"}),  # refused: stage
            feedback(session, "SubmitFeedback", {"feedback": "bolder"}),  # resumes the flow
            feedback(session, "SubmitFeedback", {"feedback": "again"}),  # refused: duplicate, resumes nothing
        ],
    )
    assert [r["error_sqlstate"] for r in rows] == ["GS410", None, "GS409"]
    answer = rows[1]["command_id"]
    row = await _row(conn, "SELECT * FROM flow_resume_handles WHERE id = $1::uuid", handle["handle_id"])
    assert (row["status"], row["resumed_by"], row["resume_payload"]) == ("RESUMED", answer, {"feedback": "bolder"})
    metadata = await conn.fetchval("SELECT metadata FROM domain_events WHERE correlation_id = $1", answer)
    assert metadata["resumes"] == {"handle_id": handle["handle_id"], "correlation_id": command, "resume_handle": HANDLE}
    assert await conn.fetchval("SELECT count(*) FROM flow_resume_handles") == 1


async def test_a_handle_past_its_time_is_expired_by_the_next_wait_and_no_longer_blocks_it(
    conn: asyncpg.Connection[Any],
) -> None:
    session, command = await _session_with_request(conn)
    await _park(conn, command, seconds=1)
    await conn.execute("UPDATE flow_resume_handles SET expires_at = now() - interval '1 second'")  # no sweep yet
    retried = await _park(conn, command, seconds=1)  # the same request again: answered as it is now
    assert (retried["created"], retried["handle"]["status"]) == (False, "EXPIRED")
    again = await _park(conn, command, handle={"round": 2})
    assert (again["created"], again["handle"]["status"]) == (True, "PAUSED")
    failed = "SELECT count(*) FROM domain_events WHERE event_type = 'Genesis.Session.Flow.Failed'"
    assert await conn.fetchval(failed) == 1  # the expiry's event, once, as the sweep records it
    assert await conn.fetchval("SELECT expire_flow_handles()") == 0
    waiting = (await conn.fetchval("SELECT get_session($1::uuid, 'alice')", session))["waiting"]
    assert [w["handle_id"] for w in waiting] == [again["handle"]["handle_id"]]


async def test_an_answer_given_before_the_session_closed_still_resumes_the_late_wait(
    conn: asyncpg.Connection[Any],
) -> None:
    session, command = await _session_with_request(conn)
    answer = await _feedback(conn, session)
    await conn.execute("UPDATE genesis_sessions SET status = 'ABANDONED' WHERE id = $1::uuid", session)
    handle = (await _park(conn, command))["handle"]
    assert (handle["status"], handle["resumed_by"]) == ("RESUMED", str(answer["command_id"]))


async def test_a_closed_session_lists_nothing_waiting(conn: asyncpg.Connection[Any]) -> None:
    session, command = await _session_with_request(conn)
    await _park(conn, command)
    await conn.execute("UPDATE genesis_sessions SET status = 'ABANDONED' WHERE id = $1::uuid", session)
    assert (await conn.fetchval("SELECT get_session($1::uuid, 'alice')", session))["waiting"] == []
