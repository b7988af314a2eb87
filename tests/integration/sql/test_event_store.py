"""The event store: causation chains, versions, metadata, the naming CHECK (held equal to the
Python validator), immutability, and the NOTIFY wake-ups that only a commit sends."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any, TypeAlias

import asyncpg
import pytest

from genesis.events import EVENT_TYPE_PATTERN, is_valid_event_type
from tests.integration.tables import Auth, Client, commands_url
from tests.relay_harness import STAGES, complete, new_session, submit
from tests.unit.test_events import BAD_NAMES, GOOD_NAMES

Conn: TypeAlias = "asyncpg.Connection[Any]"


async def _submit(conn: Conn, session: str, command_type: str, payload: dict[str, Any]) -> str:
    """Submits as alice, the way psql would; the command's id."""
    return await submit(conn, session, command_type, payload, "alice")


async def test_each_session_is_a_causation_chain_with_versions_1_2_3(conn: Conn) -> None:
    sessions = [await new_session(conn, "alice") for _ in range(2)]
    # Interleave the two sessions so a chain that crossed sessions would show.
    for session in sessions:
        await complete(conn, await _submit(conn, session, "RequestConceptGeneration", {}))
    for stage in STAGES:
        for session in sessions:
            await _submit(conn, session, "ConfirmStage", {"stage": stage})

    for session in sessions:
        events = await conn.fetch("SELECT * FROM domain_events WHERE aggregate_id = $1 ORDER BY id", uuid.UUID(session))
        assert [e["aggregate_version"] for e in events] == list(range(1, len(events) + 1))
        assert len(events) == 1 + 2 + len(STAGES) + 1
        assert events[0]["causation_id"] is None
        for previous, event in itertools.pairwise(events):
            assert event["causation_id"] == previous["event_id"]
        assert events[-1]["event_type"] == "Genesis.Session.Finished"
        assert events[-1]["correlation_id"] == events[-2]["correlation_id"]  # both from the last ConfirmStage
        created = await conn.fetchrow("SELECT * FROM command_inbox WHERE id = $1", events[0]["correlation_id"])
        assert created is not None
        assert created["command_type"] == "CreateSession"
        for event in events[1:]:
            command_session = await conn.fetchval(
                "SELECT session_id FROM command_inbox WHERE id = $1", event["correlation_id"]
            )
            assert str(command_session) == session
        row = await conn.fetchrow("SELECT version, last_event_id FROM genesis_sessions WHERE id = $1",
                                  uuid.UUID(session))  # fmt: skip
        assert row is not None
        assert (row["version"], row["last_event_id"]) == (len(events), events[-1]["event_id"])


async def test_metadata_and_outbox_row_of_an_event(client: Client, auth: Auth, session_id: str, conn: Conn) -> None:
    response = await client.post(
        commands_url(session_id),
        json={"command_type": "SubmitFeedback", "payload": {"feedback": "yes"}},
        headers={**auth(), "X-Request-ID": "req-42"},
    )
    assert response.status == 202
    assert response.headers["X-Request-ID"] == "req-42"
    command_id = uuid.UUID((await response.json())["command_id"])
    event = await conn.fetchrow("SELECT * FROM domain_events WHERE correlation_id = $1", command_id)
    assert event is not None
    meta = event["metadata"]
    # The request's W3C trace context too (CONTRACT §6), when the API traces (genesis.telemetry.tracing.setup).
    assert set(meta) - {"traceparent", "tracestate"} == {"user_id", "source_service", "request_id", "timestamp"}
    assert (meta["user_id"], meta["source_service"], meta["request_id"]) == ("alice", "genesis-api", "req-42")
    assert datetime.fromisoformat(meta["timestamp"]).tzinfo is not None
    assert (event["aggregate_type"], event["event_version"]) == ("GENESIS_SESSION", 1)

    outbox = await conn.fetchrow("SELECT * FROM event_outbox WHERE event_id = $1", event["event_id"])
    assert outbox is not None
    assert (outbox["status"], outbox["key"], outbox["attempts"]) == ("PENDING", session_id, 0)
    assert outbox["topic"]
    assert outbox["headers"] == {
        "event_id": str(event["event_id"]),
        "event_type": "Genesis.Session.FeedbackSubmitted",
        "correlation_id": str(command_id),
        "causation_id": str(event["causation_id"]),
        "ce_specversion": "1.0",
        "ce_id": str(event["event_id"]),
        "ce_source": "/infinitescribe/genesis",
        "ce_type": "Genesis.Session.FeedbackSubmitted",
        "ce_subject": session_id,
        "ce_time": event["created_at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "content-type": "application/json",
        **{k: meta[k] for k in ("traceparent", "tracestate") if k in meta},
    }
    assert outbox["payload"]["event_id"] == str(event["event_id"])
    assert outbox["payload"]["payload"] == {"feedback": "yes"}

    # From psql the event says so, and a missing request id is null.
    psql_command = uuid.UUID(await _submit(conn, session_id, "RequestConceptGeneration", {}))
    psql_event = await conn.fetchrow("SELECT * FROM domain_events WHERE correlation_id = $1", psql_command)
    assert psql_event is not None
    assert psql_event["metadata"]["source_service"] == "psql"
    assert psql_event["metadata"]["request_id"] is None


async def test_the_sql_check_and_the_python_validator_agree(conn: Conn) -> None:
    definition = await conn.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'domain_events_event_type_format'"
    )
    assert EVENT_TYPE_PATTERN in definition
    for name in [*GOOD_NAMES, *BAD_NAMES]:
        violated = await _violated_constraint(conn, name)
        accepted = violated is None
        assert violated in (None, "domain_events_event_type_format"), name
        assert accepted == is_valid_event_type(name) == (name in GOOD_NAMES), name


async def _violated_constraint(conn: Conn, event_type: str) -> str | None:
    """Inserts an event of `event_type` in a transaction that is always rolled back; the CHECK it broke."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute(
            "INSERT INTO domain_events (event_type, aggregate_id, aggregate_version) VALUES ($1, gen_random_uuid(), 1)",
            event_type,
        )
    except asyncpg.CheckViolationError as exc:
        return exc.constraint_name
    finally:
        await transaction.rollback()
    return None


async def test_events_can_never_be_changed_or_removed(conn: Conn) -> None:
    session = await new_session(conn, "alice")
    await _submit(conn, session, "RequestConceptGeneration", {})
    before = await conn.fetch("SELECT * FROM domain_events ORDER BY id")
    for statement in (
        "UPDATE domain_events SET payload = '{}'",
        "UPDATE domain_events SET event_type = 'Genesis.Session.Updated' WHERE aggregate_version = 2",
        "DELETE FROM domain_events",
        "DELETE FROM domain_events WHERE aggregate_version = 2",
        "TRUNCATE domain_events CASCADE",
    ):
        with pytest.raises(asyncpg.PostgresError) as caught:
            await conn.execute(statement)
        assert caught.value.sqlstate == "GS501", statement
        assert "append-only" in str(caught.value)
    # Without CASCADE the outbox's foreign key refuses it even before the trigger.
    with pytest.raises(asyncpg.PostgresError):
        await conn.execute("TRUNCATE domain_events")
    assert await conn.fetch("SELECT * FROM domain_events ORDER BY id") == before
    assert await conn.fetchval("SELECT count(*) FROM event_outbox") == len(before)


async def _listener(database_url: str) -> tuple[Conn, list[tuple[str, str]], asyncio.Event]:
    received: list[tuple[str, str]] = []
    arrived = asyncio.Event()

    def on_notify(_conn: object, _pid: int, channel: str, payload: object) -> None:
        received.append((channel, str(payload)))
        arrived.set()

    listener: Conn = await asyncpg.connect(database_url)
    for channel in ("genesis_outbox_v1", "genesis_events_v1"):
        await listener.add_listener(channel, on_notify)
    return listener, received, arrived


async def test_a_commit_notifies_both_channels_a_refusal_neither(database_url: str, conn: Conn) -> None:
    refused_session = await new_session(conn, "alice")
    session = await new_session(conn, "alice")
    listener, received, arrived = await _listener(database_url)
    try:
        with pytest.raises(asyncpg.PostgresError):  # refused: stage conflict
            await _submit(conn, refused_session, "ConfirmStage", {"stage": "WORLDVIEW"})
        with pytest.raises(asyncpg.PostgresError):  # refused: feedback is required text
            await _submit(conn, refused_session, "SubmitFeedback", {"feedback": ""})

        # Inside an open transaction nothing is sent yet; the commit sends it.
        async with conn.transaction():
            await _submit(conn, session, "ConfirmStage", {"stage": "CONCEPT_SELECTION"})
            await asyncio.sleep(0.2)
            assert received == []
        while ("genesis_events_v1", session) not in received:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 10)
        # Notifications come in commit order: anything sent for the refusals would stand first.
        assert received == [("genesis_outbox_v1", ""), ("genesis_events_v1", session)]
    finally:
        await listener.close()


async def test_a_result_event_continues_the_trace_of_the_command_it_settles(conn: Conn) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    session_id = await new_session(conn)
    row = await conn.fetchrow(
        "SELECT * FROM submit_command($1, $2, $3, $4, NULL, NULL, $5, $6)",
        uuid.UUID(session_id),
        "RequestConceptGeneration",
        {"count": 1},
        "relay-tester",
        traceparent,
        "vendor=1",
    )
    assert row is not None
    await complete(conn, str(row["command_id"]))
    result = await conn.fetchrow(
        """SELECT e.metadata, o.headers FROM domain_events e JOIN event_outbox o USING (event_id)
            WHERE e.event_type = 'Genesis.Session.ConceptProposed'"""
    )
    assert result is not None
    assert (result["metadata"]["traceparent"], result["metadata"]["tracestate"]) == (traceparent, "vendor=1")
    assert (result["headers"]["traceparent"], result["headers"]["tracestate"]) == (traceparent, "vendor=1")
