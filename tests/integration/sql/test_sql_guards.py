"""The psql path: submit_command, complete_command and expire_stale_commands called straight from SQL
on a plain connection obey the same guards, with the service's SQLSTATEs and a JSON DETAIL."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import asyncpg
import pytest

from genesis import errors
from tests.integration.tables import STAGES, row_counts

Plain: TypeAlias = "asyncpg.Connection[Any]"
SUBMIT = "SELECT * FROM submit_command($1::uuid, $2, $3::jsonb, $4, $5)"


@pytest.fixture
async def psql(database_url: str) -> AsyncIterator[Plain]:
    """What an operator has: no codecs, JSON as text, application_name psql."""
    connection: Plain = await asyncpg.connect(database_url, server_settings={"application_name": "psql"})
    yield connection
    await connection.close()


async def _session(psql: Plain, user: str = "alice") -> str:
    created = json.loads(await psql.fetchval("SELECT create_session($1)", user))
    return str(created["id"])


async def _submit(
    psql: Plain, session: str, command_type: str, payload: str = "{}", user: str = "alice", key: str | None = None
) -> asyncpg.Record:
    row: asyncpg.Record | None = await psql.fetchrow(SUBMIT, session, command_type, payload, user, key)
    assert row is not None
    return row


async def _refused(psql: Plain, sqlstate: str, query: str, *args: object) -> dict[str, Any]:
    """Runs `query`, expects the refusal `sqlstate`, checks it stored nothing; returns the DETAIL."""
    before = await row_counts(psql)
    with pytest.raises(asyncpg.PostgresError) as caught:
        await psql.fetch(query, *args)
    assert caught.value.sqlstate == sqlstate, (caught.value.sqlstate, str(caught.value))
    detail = json.loads(caught.value.detail or "")
    assert isinstance(detail, dict)
    domain = errors.from_postgres(caught.value)
    assert domain is not None
    assert domain.fields == detail
    assert await row_counts(psql) == before
    return detail


async def test_every_submit_guard_from_psql(psql: Plain) -> None:
    session = await _session(psql)
    bobs = await _session(psql, "bob")

    detail = await _refused(psql, "GS422", SUBMIT, session, "LaunchRocket", "{}", "alice", None)
    assert detail == {"supported_command_types": ["ConfirmStage", "RequestConceptGeneration", "SubmitFeedback"]}
    for payload in ("[1]", '"text"', "null", None):
        detail = await _refused(psql, "GS423", SUBMIT, session, "ConfirmStage", payload, "alice", None)
        assert detail == {"fields": {"payload": "must be an object"}}
    for payload in ("{}", '{"feedback": ""}', '{"feedback": "   "}', '{"feedback": 3}'):
        detail = await _refused(psql, "GS423", SUBMIT, session, "SubmitFeedback", payload, "alice", None)
        assert detail == {"fields": {"feedback": "must be a non-empty string"}}
    for payload in ("{}", '{"stage": 1}'):
        detail = await _refused(psql, "GS423", SUBMIT, session, "ConfirmStage", payload, "alice", None)
        assert detail == {"fields": {"stage": "must be a non-empty string"}}

    for target, user in ((str(uuid.uuid4()), "alice"), (bobs, "alice"), (session, None), (session, "")):
        detail = await _refused(psql, "GS404", SUBMIT, target, "RequestConceptGeneration", "{}", user, None)
        assert detail == {"session_id": target}

    detail = await _refused(psql, "GS410", SUBMIT, session, "ConfirmStage", '{"stage": "WORLDVIEW"}', "alice", None)
    assert detail == {"current_stage": "CONCEPT_SELECTION", "requested_stage": "WORLDVIEW"}

    first = await _submit(psql, session, "RequestConceptGeneration", key="k1")
    assert (first["command_status"], first["is_async"], first["replayed"]) == ("RECEIVED", True, False)
    detail = await _refused(psql, "GS409", SUBMIT, session, "RequestConceptGeneration", '{"count": 2}', "alice", None)
    assert detail == {"duplicate_command_id": str(first["command_id"])}
    detail = await _refused(psql, "GS424", SUBMIT, session, "SubmitFeedback", '{"feedback": "x"}', "alice", "k1")
    assert detail == {"command_id": str(first["command_id"])}
    replay = await _submit(psql, session, "RequestConceptGeneration", key="k1")
    assert (replay["command_id"], replay["replayed"]) == (first["command_id"], True)

    await _submit(psql, session, "ConfirmStage", '{"stage": "CONCEPT_SELECTION"}')
    detail = await _refused(psql, "GS410", SUBMIT, bobs, "ConfirmStage", '{"stage": "WORLDVIEW"}', "bob", None)
    assert detail["current_stage"] == "CONCEPT_SELECTION"
    await psql.execute("SELECT expire_stale_commands(interval '0 seconds')")  # frees the pending type
    detail = await _refused(psql, "GS410", SUBMIT, session, "RequestConceptGeneration", "{}", "alice", None)
    assert detail == {"current_stage": "STORY_CONCEPTION", "required_stage": "CONCEPT_SELECTION"}

    for stage in STAGES[1:]:
        await _submit(psql, session, "ConfirmStage", json.dumps({"stage": stage}))
    for command_type, payload in [("SubmitFeedback", '{"feedback": "late"}'), ("ConfirmStage", '{"stage": "FINISHED"}'),
                                  ("RequestConceptGeneration", "{}")]:  # fmt: skip
        detail = await _refused(psql, "GS411", SUBMIT, session, command_type, payload, "alice", None)
        assert detail == {"session_status": "COMPLETED"}


async def test_create_session_needs_a_user(psql: Plain) -> None:
    for user in (None, "", "  "):
        detail = await _refused(psql, "GS423", "SELECT create_session($1)", user)
        assert detail == {"fields": {"user_id": "required"}}


async def test_complete_command_appends_the_result_event(psql: Plain) -> None:
    session = await _session(psql)
    concept = await _submit(psql, session, "RequestConceptGeneration")
    feedback = await _submit(psql, session, "SubmitFeedback", '{"feedback": "more"}')

    done = await psql.fetchrow(
        "SELECT * FROM complete_command($1, 'COMPLETED', $2::jsonb)", concept["command_id"], '{"concepts": ["a"]}'
    )
    assert done is not None
    assert (done["command_id"], done["command_status"]) == (concept["command_id"], "COMPLETED")
    event = await psql.fetchrow("SELECT * FROM domain_events WHERE event_id = $1", done["event_id"])
    assert event is not None
    assert event["event_type"] == "Genesis.Session.ConceptProposed"
    assert event["correlation_id"] == concept["command_id"]
    assert json.loads(event["payload"]) == {
        "command_id": str(concept["command_id"]),
        "command_type": "RequestConceptGeneration",
        "result": {"concepts": ["a"]},
    }
    assert await psql.fetchval("SELECT count(*) FROM event_outbox WHERE event_id = $1", done["event_id"]) == 1
    command = await psql.fetchrow("SELECT * FROM command_inbox WHERE id = $1", concept["command_id"])
    assert command is not None
    assert (command["status"], command["error"], json.loads(command["result"])) == (
        "COMPLETED",
        None,
        {"concepts": ["a"]},
    )
    assert command["completed_at"] is not None
    task = await psql.fetchrow("SELECT * FROM async_tasks WHERE command_id = $1", concept["command_id"])
    assert task is not None
    assert (task["status"], task["progress"], json.loads(task["result"])) == ("COMPLETED", 100, {"concepts": ["a"]})
    assert task["completed_at"] is not None

    failed = await psql.fetchrow(
        "SELECT * FROM complete_command($1, 'FAILED', $2::jsonb)", feedback["command_id"], '{"error": "agent down"}'
    )
    assert failed is not None
    assert failed["command_status"] == "FAILED"
    event_type = await psql.fetchval("SELECT event_type FROM domain_events WHERE event_id = $1", failed["event_id"])
    assert event_type == "Genesis.Session.FeedbackFailed"
    command = await psql.fetchrow("SELECT status, error FROM command_inbox WHERE id = $1", feedback["command_id"])
    assert command is not None
    assert tuple(command) == ("FAILED", "agent down")
    task = await psql.fetchrow("SELECT status, error FROM async_tasks WHERE command_id = $1", feedback["command_id"])
    assert task is not None
    assert tuple(task) == ("FAILED", "agent down")

    # Settled commands free the duplicate guard.
    again = await _submit(psql, session, "RequestConceptGeneration")
    assert again["command_status"] == "RECEIVED"
    revised = await _submit(psql, session, "SubmitFeedback", '{"feedback": "again"}')
    done = await psql.fetchrow("SELECT * FROM complete_command($1, 'COMPLETED')", revised["command_id"])
    assert done is not None
    event_type = await psql.fetchval("SELECT event_type FROM domain_events WHERE event_id = $1", done["event_id"])
    assert event_type == "Genesis.Session.ContentRevised"


async def test_complete_command_refusals(psql: Plain) -> None:
    session = await _session(psql)
    pending = await _submit(psql, session, "RequestConceptGeneration")
    sync = await _submit(psql, session, "ConfirmStage", '{"stage": "CONCEPT_SELECTION"}')
    complete = "SELECT * FROM complete_command($1, $2, '{}'::jsonb)"

    detail = await _refused(psql, "GS405", complete, uuid.uuid4(), "COMPLETED")
    assert set(detail) == {"command_id"}
    for outcome in ("DONE", "completed", None):
        detail = await _refused(psql, "GS423", complete, pending["command_id"], outcome)
        assert detail == {"fields": {"outcome": "COMPLETED or FAILED"}}
    detail = await _refused(psql, "GS412", complete, sync["command_id"], "COMPLETED")
    assert detail == {"command_id": str(sync["command_id"]), "command_status": "COMPLETED"}

    first = await psql.fetchrow(complete, pending["command_id"], "FAILED")
    # A different completion of the settled command is refused; the same one again is not (next test).
    for outcome, result in (("COMPLETED", "{}"), ("FAILED", '{"error": "other"}')):
        detail = await _refused(
            psql, "GS412", "SELECT * FROM complete_command($1, $2, $3::jsonb)", pending["command_id"], outcome, result
        )
        assert detail == {"command_id": str(pending["command_id"]), "command_status": "FAILED"}
    assert first is not None
    detail = await _refused(psql, "GS423", "SELECT * FROM complete_command($1, 'COMPLETED', '[1]')", uuid.uuid4())
    assert detail == {"fields": {"result": "must be an object"}}


async def test_the_same_completion_again_answers_the_same_and_records_nothing(psql: Plain) -> None:
    session = await _session(psql)
    pending = await _submit(psql, session, "RequestConceptGeneration")
    complete = "SELECT * FROM complete_command($1, 'COMPLETED', $2::jsonb)"
    first = await psql.fetchrow(complete, pending["command_id"], '{"concepts": ["a"]}')
    before = await row_counts(psql)
    again = await psql.fetchrow(complete, pending["command_id"], '{"concepts": ["a"]}')
    assert again is not None
    assert first is not None
    assert dict(again) == dict(first)
    assert await row_counts(psql) == before
    detail = await _refused(psql, "GS412", complete, pending["command_id"], '{"concepts": ["b"]}')
    assert detail["command_status"] == "COMPLETED"

    # A command the sweep failed has no result event of an agent's: any completion of it is refused.
    stale = await _submit(psql, session, "RequestConceptGeneration")
    await psql.execute("UPDATE command_inbox SET created_at = now() - interval '1 hour' WHERE id = $1", stale[0])
    assert await psql.fetchval("SELECT expire_stale_commands(interval '15 minutes')") == 1
    detail = await _refused(psql, "GS412", "SELECT * FROM complete_command($1, 'FAILED')", stale["command_id"])
    assert detail["command_status"] == "FAILED"


async def test_expire_stale_commands_fails_old_pending_commands(psql: Plain) -> None:
    old_session = await _session(psql)
    fresh_session = await _session(psql)
    old = await _submit(psql, old_session, "RequestConceptGeneration")
    fresh = await _submit(psql, fresh_session, "RequestConceptGeneration")
    settled = await _submit(psql, old_session, "SubmitFeedback", '{"feedback": "x"}')
    await psql.fetch("SELECT * FROM complete_command($1, 'COMPLETED')", settled["command_id"])
    await psql.execute(
        "UPDATE command_inbox SET created_at = now() - interval '1 hour' WHERE id = ANY($1)",
        [old["command_id"], settled["command_id"]],
    )

    assert await psql.fetchval("SELECT expire_stale_commands(interval '15 minutes')") == 1
    assert await psql.fetchval("SELECT expire_stale_commands(interval '15 minutes')") == 0

    command = await psql.fetchrow("SELECT status, error FROM command_inbox WHERE id = $1", old["command_id"])
    assert command is not None
    assert command["status"] == "FAILED"
    assert command["error"].startswith("timed out")
    task_status = await psql.fetchval("SELECT status FROM async_tasks WHERE command_id = $1", old["command_id"])
    assert task_status == "FAILED"
    event = await psql.fetchrow(
        "SELECT * FROM domain_events WHERE correlation_id = $1 ORDER BY id DESC LIMIT 1", old["command_id"]
    )
    assert event is not None
    assert event["event_type"] == "Genesis.Session.CommandFailed"
    payload = json.loads(event["payload"])
    assert (payload["command_id"], payload["command_type"]) == (str(old["command_id"]), "RequestConceptGeneration")
    assert payload["reason"].startswith("timed out")
    assert await psql.fetchval("SELECT count(*) FROM event_outbox WHERE event_id = $1", event["event_id"]) == 1
    assert await psql.fetchval("SELECT status FROM command_inbox WHERE id = $1", fresh["command_id"]) == "RECEIVED"
    assert await psql.fetchval("SELECT status FROM command_inbox WHERE id = $1", settled["command_id"]) == "COMPLETED"

    # The duplicate guard is free again for the expired command's session, not for the fresh one.
    assert (await _submit(psql, old_session, "RequestConceptGeneration"))["command_status"] == "RECEIVED"
    await _refused(psql, "GS409", SUBMIT, fresh_session, "RequestConceptGeneration", "{}", "alice", None)


async def test_expire_stale_commands_takes_at_most_max_rows(psql: Plain) -> None:
    sessions = [await _session(psql) for _ in range(3)]
    for session in sessions:
        await _submit(psql, session, "SubmitFeedback", '{"feedback": "x"}')
    await psql.execute("UPDATE command_inbox SET created_at = now() - interval '1 day' WHERE status = 'RECEIVED'")
    assert await psql.fetchval("SELECT expire_stale_commands(interval '1 minute', 2)") == 2
    assert await psql.fetchval("SELECT expire_stale_commands(interval '1 minute', 2)") == 1
    assert await psql.fetchval("SELECT count(*) FROM command_inbox WHERE status = 'FAILED'") == 3
