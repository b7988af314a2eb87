"""expire_stale_commands run by two relays at once, on the real database: they queue behind each other on the
sessions' locks, never deadlock, and fail each stale command once."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from genesis import db

SESSIONS = 150  # each with two pending commands: 300 candidates a round
ROUNDS = 5

# Two relays' sweeps a minute apart see different candidates: the later one also has the commands that have just
# crossed the timeout. Here the same thing, at one instant, by two timeouts. Most commands share one created_at (a
# group commit's commands do), the rest sit between the two thresholds, so each sweep sorts its own set of ties.
STALE = """
    UPDATE command_inbox c
       SET created_at = CASE WHEN random() < 0.7 THEN timestamptz '2020-01-01'
                             ELSE now() - interval '29 minutes 30 seconds' END
     WHERE c.status = 'RECEIVED'
"""


async def _pending_commands(conn: asyncpg.Connection[Any]) -> None:
    for _ in range(SESSIONS):
        session = (await conn.fetchval("SELECT create_session('alice')"))["id"]
        for command_type, payload in (("RequestConceptGeneration", {}), ("SubmitFeedback", {"feedback": "more"})):
            await conn.fetchrow(
                "SELECT * FROM submit_command($1::uuid, $2, $3::jsonb, 'alice')", session, command_type, payload
            )
    await conn.execute(STALE)


async def _sweep(database_url: str, older_than: str, go: asyncio.Event) -> int:
    # A relay's pool runs at READ COMMITTED (the default): a sweep that waited re-reads what the other one failed.
    conn = await db.connect(database_url, application_name="genesis-relay")
    try:
        await go.wait()
        return int(await conn.fetchval("SELECT expire_stale_commands($1::text::interval)", older_than))
    finally:
        await conn.close()


async def test_two_sweeps_at_once_never_deadlock_and_fail_each_command_once(
    database_url: str, conn: asyncpg.Connection[Any]
) -> None:
    for round_ in range(ROUNDS):
        await _pending_commands(conn)
        go = asyncio.Event()
        sweeps = [asyncio.create_task(_sweep(database_url, older, go)) for older in ("30 minutes", "29 minutes")]
        await asyncio.sleep(0.2)  # both connected and waiting
        go.set()
        outcomes = await asyncio.gather(*sweeps, return_exceptions=True)
        deadlocks = [o for o in outcomes if isinstance(o, asyncpg.DeadlockDetectedError)]
        assert not deadlocks, f"round {round_}: {deadlocks[0]}"
        assert sum(outcomes) == 2 * SESSIONS, outcomes  # type: ignore[arg-type]

    pending = await conn.fetchval("SELECT count(*) FROM command_inbox WHERE status IN ('RECEIVED', 'PROCESSING')")
    assert pending == 0
    failed_events = await conn.fetch(
        """SELECT correlation_id, count(*) AS n FROM domain_events
            WHERE event_type = 'Genesis.Session.CommandFailed' GROUP BY correlation_id"""
    )
    assert len(failed_events) == ROUNDS * 2 * SESSIONS
    assert {r["n"] for r in failed_events} == {1}
