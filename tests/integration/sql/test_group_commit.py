"""submit_commands (issue 21, CONTRACT §3 "Group commit"): one transaction, each command all-or-nothing with its own
answer, sessions locked in one order, one NOTIFY per channel."""

from __future__ import annotations

import asyncio
import random
from typing import Any, TypeAlias

import asyncpg

from genesis import db
from tests.integration.tables import row_counts

Conn: TypeAlias = "asyncpg.Connection[Any]"
BATCH = "SELECT * FROM submit_commands($1::jsonb) ORDER BY ordinal"
SINGLE = "SELECT * FROM submit_command($1::uuid, 'SubmitFeedback', '{\"feedback\": \"e\"}', 'alice')"
UNKNOWN_SESSION = "00000000-0000-4000-8000-000000000000"


def _command(
    session: str, command_type: str, payload: Any, key: str | None = None, user: str = "alice"
) -> dict[str, Any]:
    return {"session_id": session, "command_type": command_type, "payload": payload, "user_id": user,
            "idempotency_key": key}  # fmt: skip


async def _session(conn: Conn, user: str = "alice") -> str:
    return str((await conn.fetchval("SELECT create_session($1)", user))["id"])


async def test_each_command_of_a_batch_gets_its_own_answer_and_is_recorded_whole_or_not_at_all(conn: Conn) -> None:
    a, b = await _session(conn), await _session(conn)
    # b has a keyed command already: the batch replays it.
    earlier = await conn.fetchrow(
        "SELECT * FROM submit_command($1::uuid, 'SubmitFeedback', '{\"feedback\": \"x\"}', 'alice', 'k-1')", b
    )
    assert earlier is not None
    before = await row_counts(conn)
    commands = [
        _command(a, "RequestConceptGeneration", {"count": 2}),  # 1 accepted
        _command(a, "RequestConceptGeneration", {"count": 3}),  # 2 duplicate of 1, same batch
        _command(a, "ConfirmStage", {"stage": "WORLDVIEW"}),  # 3 stage conflict
        _command(UNKNOWN_SESSION, "SubmitFeedback", {"feedback": "y"}),  # 4 no such session
        _command(b, "SubmitFeedback", {"feedback": "x"}, key="k-1"),  # 5 replay
        _command(b, "SubmitFeedback", {"feedback": "z"}, key="k-1"),  # 6 key reused
        _command(a, "NoSuchCommand", {}),  # 7 unknown command
        _command(b, "SubmitFeedback", {"feedback": " "}),  # 8 blank feedback
        _command(a, "ConfirmStage", {"stage": "CONCEPT_SELECTION"}, user="mallory"),  # 9 someone else's session
        _command(a, "ConfirmStage", {"stage": "CONCEPT_SELECTION"}),  # 10 accepted, sync
        _command(a, "ConfirmStage", {"stage": "CONCEPT_SELECTION"}),  # 11 now a stage conflict
    ]
    rows = await conn.fetch(BATCH, commands)
    assert [r["ordinal"] for r in rows] == list(range(1, 12))
    states = [r["error_sqlstate"] for r in rows]
    assert states == [None, "GS409", "GS410", "GS404", None, "GS424", "GS422", "GS423", "GS404", None, "GS410"]
    first = rows[0]["command_id"]
    assert rows[0]["command_status"] == "RECEIVED"
    assert rows[0]["is_async"]
    assert not rows[0]["replayed"]
    assert rows[1]["error_detail"] == f'{{"duplicate_command_id": "{first}"}}'
    assert rows[4]["replayed"]
    assert rows[4]["command_id"] == earlier["command_id"]
    assert rows[9]["command_status"] == "COMPLETED"
    assert rows[9]["session"]["stage"] == "STORY_CONCEPTION"
    assert rows[2]["error_message"] == "Cannot confirm WORLDVIEW; the session is at CONCEPT_SELECTION"

    # Exactly the two accepted commands' rows: each an inbox row and one event (+ outbox), the async one a task.
    after = await row_counts(conn)
    grown = {t: after[t] - before[t] for t in after}
    assert grown == {"genesis_sessions": 0, "command_inbox": 2, "domain_events": 2, "event_outbox": 2,
                     "async_tasks": 1, "flow_resume_handles": 0}  # fmt: skip
    versions = await conn.fetch(
        "SELECT aggregate_version FROM domain_events WHERE aggregate_id = $1::uuid ORDER BY aggregate_version", a
    )
    assert [v[0] for v in versions] == [1, 2, 3]
    assert await conn.fetchval("SELECT version FROM genesis_sessions WHERE id = $1::uuid", a) == 3


async def _listen(database_url: str) -> tuple[Conn, list[tuple[str, str]], asyncio.Event]:
    received: list[tuple[str, str]] = []
    arrived = asyncio.Event()

    def on_notify(_conn: object, _pid: int, channel: str, payload: object) -> None:
        received.append((channel, str(payload)))
        arrived.set()

    listener: Conn = await asyncpg.connect(database_url)
    for channel in ("genesis_outbox_v1", "genesis_events_v1"):
        await listener.add_listener(channel, on_notify)
    return listener, received, arrived


async def test_a_batch_notifies_each_channel_once_listing_its_sessions(database_url: str, conn: Conn) -> None:
    sessions = sorted([await _session(conn) for _ in range(3)])
    later = await _session(conn)  # before listening: create_session notifies too
    listener, received, arrived = await _listen(database_url)
    try:
        commands = [_command(s, "SubmitFeedback", {"feedback": f"f{i}"}) for s in sessions for i in range(2)]
        commands += [_command(s, "ConfirmStage", {"stage": "CONCEPT_SELECTION"}) for s in sessions]
        rows = await conn.fetch(BATCH, commands)
        assert [r["error_sqlstate"] for r in rows] == [None, "GS409"] * 3 + [None] * 3
        # A later psql submit_command in its own transaction still notifies as before: it marks the end.
        await conn.fetch(SINGLE, later)
        while len([r for r in received if r[0] == "genesis_events_v1"]) < 2:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 10)
        # Notifications come in commit order: the batch's two, then the single command's two.
        assert received == [("genesis_outbox_v1", ""), ("genesis_events_v1", " ".join(sessions)),
                            ("genesis_outbox_v1", ""), ("genesis_events_v1", later)]  # fmt: skip
    finally:
        await listener.close()


async def test_a_submit_command_after_a_batch_in_the_same_transaction_still_notifies(
    database_url: str, conn: Conn
) -> None:
    session, other = await _session(conn), await _session(conn)
    listener, received, arrived = await _listen(database_url)
    try:
        async with conn.transaction():
            await conn.fetch(BATCH, [_command(session, "SubmitFeedback", {"feedback": "f"})])
            await conn.fetch(SINGLE, other)
        while not any(other in r[1] for r in received):
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 10)
        assert ("genesis_events_v1", other) in received
    finally:
        await listener.close()


async def test_concurrent_batches_over_overlapping_sessions_never_deadlock_and_keep_versions_gapless(
    database_url: str, conn: Conn
) -> None:
    sessions = [await _session(conn) for _ in range(6)]
    rounds, workers = 15, 6

    async def work(seed: int) -> list[str | None]:
        rng = random.Random(seed)
        c: Conn = await db.connect(database_url, application_name="batch")
        states: list[str | None] = []
        try:
            for _ in range(rounds):
                order = rng.sample(sessions, len(sessions))  # each batch names the sessions in its own order
                rows = await c.fetch(BATCH, [_command(s, "SubmitFeedback", {"feedback": "f"}) for s in order])
                states += [r["error_sqlstate"] for r in rows]
                for r in rows:  # settle what was accepted, so the next round records again
                    if r["command_id"] is not None:
                        await c.execute("SELECT complete_command($1, 'COMPLETED')", r["command_id"])
        finally:
            await c.close()
        return states

    results = await asyncio.gather(*(work(n) for n in range(workers)))
    states = [s for r in results for s in r]
    # Only refusals of the rules: a deadlock (40P01) would show here as a command's own error.
    assert set(states) <= {None, "GS409"}
    assert None in states
    for s in sessions:
        versions = [r[0] for r in await conn.fetch(
            "SELECT aggregate_version FROM domain_events WHERE aggregate_id = $1::uuid ORDER BY aggregate_version", s
        )]  # fmt: skip
        assert versions == list(range(1, len(versions) + 1))
        assert await conn.fetchval("SELECT version FROM genesis_sessions WHERE id = $1::uuid", s) == len(versions)
