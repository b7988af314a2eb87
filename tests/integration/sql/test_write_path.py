"""What one command writes (issue 15): each row once, no index that no query needs, the same answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import asyncpg
import pytest

from tests.integration.tables import STAGES

Conn: TypeAlias = "asyncpg.Connection[Any]"
SUBMIT = "SELECT * FROM submit_command($1::uuid, $2, $3::jsonb, $4, $5)"
# This backend's writes per table, counted by PostgreSQL itself (pg_stat_xact_*).
WRITES = """
    SELECT relname, n_tup_ins, n_tup_upd FROM pg_stat_xact_user_tables
     WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY relname
"""


@pytest.fixture
async def psql(database_url: str) -> AsyncIterator[Conn]:
    """A plain connection, JSON as text, as an operator's."""
    connection: Conn = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


async def _row(conn: Conn, sql: str, *args: Any) -> asyncpg.Record:
    row: asyncpg.Record | None = await conn.fetchrow(sql, *args)
    assert row is not None
    return row


async def _writes(conn: Conn, sql: str, *args: Any) -> dict[str, tuple[int, int]]:
    # The counts can still hold earlier transactions' writes that were not yet reported: take the difference.
    async with conn.transaction():
        before = {r["relname"]: (r["n_tup_ins"], r["n_tup_upd"]) for r in await conn.fetch(WRITES)}
        await conn.fetch(sql, *args)
        after = {r["relname"]: (r["n_tup_ins"], r["n_tup_upd"]) for r in await conn.fetch(WRITES)}
    changes = {t: (i - before.get(t, (0, 0))[0], u - before.get(t, (0, 0))[1]) for t, (i, u) in after.items()}
    return {t: c for t, c in changes.items() if c != (0, 0)}


# Every outbox row is also queued for the relays' admission (relay v2's insert trigger, migration 0004).
OUTBOX = ("event_outbox", "outbox_new_rows")


async def test_each_row_is_written_once(psql: Conn) -> None:
    conn = psql
    created = await _writes(conn, "SELECT create_session('alice')")
    assert created == dict.fromkeys(("command_inbox", "domain_events", *OUTBOX, "genesis_sessions"), (1, 0))
    session_id = await conn.fetchval("SELECT id::text FROM genesis_sessions")

    concept = await _writes(conn, SUBMIT, session_id, "RequestConceptGeneration", '{"count": 2}', "alice", "k-1")
    assert concept == {
        "async_tasks": (1, 0), "command_inbox": (1, 0), "domain_events": (1, 0), "event_outbox": (1, 0),
        "outbox_new_rows": (1, 0), "genesis_sessions": (0, 1),
    }  # fmt: skip
    for stage in STAGES[:-1]:
        confirmed = await _writes(conn, SUBMIT, session_id, "ConfirmStage", json.dumps({"stage": stage}), "alice", None)
        assert confirmed == dict.fromkeys(("command_inbox", "domain_events", *OUTBOX), (1, 0)) | {
            "genesis_sessions": (0, 1)
        }
    finished = await _writes(
        conn, SUBMIT, session_id, "ConfirmStage", json.dumps({"stage": STAGES[-1]}), "alice", None
    )  # fmt: skip
    assert finished == {"command_inbox": (1, 0), "domain_events": (2, 0), "event_outbox": (2, 0),
                        "outbox_new_rows": (2, 0), "genesis_sessions": (0, 1)}  # fmt: skip
    events = await conn.fetch("SELECT aggregate_version, event_id, causation_id FROM domain_events ORDER BY id")
    assert [e["aggregate_version"] for e in events] == list(range(1, len(events) + 1))
    assert [e["causation_id"] for e in events[1:]] == [e["event_id"] for e in events[:-1]]
    session = await _row(conn, "SELECT version, last_event_id, status FROM genesis_sessions")
    assert (session["version"], session["last_event_id"], session["status"]) == (
        len(events), events[-1]["event_id"], "COMPLETED"
    )  # fmt: skip


async def test_the_reply_is_stored_only_for_a_key_that_can_replay_it(psql: Conn) -> None:
    conn = psql
    session_id = json.loads(await conn.fetchval("SELECT create_session('alice')"))["id"]
    keyed = await _row(conn, SUBMIT, session_id, "ConfirmStage", json.dumps({"stage": STAGES[0]}), "alice", "k")
    plain = await _row(conn, SUBMIT, session_id, "ConfirmStage", json.dumps({"stage": STAGES[1]}), "alice", None)
    replies = dict(await conn.fetch("SELECT id, reply FROM command_inbox WHERE command_type = 'ConfirmStage'"))
    assert replies[plain["command_id"]] is None
    stored = json.loads(replies[keyed["command_id"]])
    assert stored == {
        "status": "COMPLETED", "event_ids": [str(e) for e in keyed["event_ids"]],
        "session": json.loads(keyed["session"]),
    }  # fmt: skip
    again = await _row(conn, SUBMIT, session_id, "ConfirmStage", json.dumps({"stage": STAGES[0]}), "alice", "k")
    assert again["replayed"]
    assert (again["command_id"], again["event_ids"], again["session"]) == (
        keyed["command_id"], keyed["event_ids"], keyed["session"]
    )  # fmt: skip


async def test_indexes_no_query_uses_are_gone(psql: Conn) -> None:
    conn = psql
    names = {r["indexname"] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    gone = {"idx_genesis_sessions_user", "idx_async_tasks_session", "idx_async_tasks_open",
            "idx_domain_events_correlation"}  # fmt: skip
    assert not names & gone
    assert {"idx_domain_events_aggregate_seq", "idx_command_inbox_pending_age", "idx_event_outbox_event"} <= names
