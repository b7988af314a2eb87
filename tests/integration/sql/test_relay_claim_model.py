"""The v2 claim (heads table) against the claim before it (tests/integration/sql/claim_outbox_v1.sql) on random
outboxes built through the outbox functions: with a batch that takes everything, both claim the same rows.

Each example runs in one transaction that is rolled back, so now() stands still: leases never run out, and
retries are scheduled with a base delay of 0 (due at once), the one case the old claim also defines (it
knew nothing of next_attempt_at, nor of a batch claimed ahead)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genesis import db
from tests.relay_harness import USER

OLD_CLAIM = (Path(__file__).parent / "claim_outbox_v1.sql").read_text()
EVERYTHING = 10_000

# One step on the outbox: claim `size` rows and do `outcome` with them, or an operator's act on row `pick`.
step = st.one_of(
    st.tuples(
        st.just("claim"),
        st.integers(1, 6),
        st.sampled_from(["sent", "sent_prefix", "attempt", "failed", "release", "hold"]),
    ),
    st.tuples(st.sampled_from(["discard", "requeue"]), st.integers(0, 40), st.just("")),
    st.tuples(st.just("append"), st.integers(0, 4), st.integers(1, 3)),
)


async def apply(conn: Any, sessions: list[uuid.UUID], op: tuple[Any, Any, Any]) -> None:
    kind, n, what = op
    if kind == "append":
        await conn.execute(
            """SELECT count(genesis_append_event($1, 'Genesis.Session.FeedbackSubmitted', '{}', gen_random_uuid(), $2,
                                                 NULL)) FROM generate_series(1, $3)""",
            sessions[n % len(sessions)], USER, what,
        )  # fmt: skip
        return
    if kind in ("discard", "requeue"):
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM event_outbox ORDER BY id")]
        row = ids[n % len(ids)]
        async with conn.transaction():  # a savepoint: a refused act changes nothing
            try:
                if kind == "discard":
                    await conn.execute("SELECT discard_outbox($1, 'model')", row)
                else:
                    await conn.execute("SELECT requeue_outbox($1)", row)
            except Exception:
                raise _RefusedError from None
        return
    rows = await conn.fetch("SELECT id, claim_token FROM claim_outbox($1)", n)
    if not rows:
        return
    token, ids = rows[0]["claim_token"], [r["id"] for r in rows]
    if what == "sent":
        await conn.execute("SELECT mark_outbox_sent($1, $2)", token, ids)
    elif what == "sent_prefix":
        await conn.execute("SELECT mark_outbox_sent($1, $2)", token, ids[:1])
        await conn.execute("SELECT release_outbox($1, $2)", token, ids[1:])
    elif what == "attempt":
        await conn.execute("SELECT record_outbox_attempt($1, $2, 'E: model', '0 seconds', 3)", token, ids[:1])
        await conn.execute("SELECT release_outbox($1, $2)", token, ids[1:])
    elif what == "failed":
        await conn.execute("SELECT mark_outbox_failed($1, $2, 'E: model')", token, ids[:1])
        await conn.execute("SELECT release_outbox($1, $2)", token, ids[1:])
    elif what == "release":
        await conn.execute("SELECT release_outbox($1, $2)", token, ids)
    # "hold": the claim stays, leased past the end of the example


class _RefusedError(Exception):
    pass


async def claimed_by(conn: Any, function: str) -> set[int]:
    tx = conn.transaction()
    await tx.start()
    try:
        return {r["id"] for r in await conn.fetch(f"SELECT id FROM {function}($1)", EVERYTHING)}
    finally:
        await tx.rollback()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sessions=st.integers(1, 4), steps=st.lists(step, max_size=14))
def test_the_v2_claim_takes_what_the_old_claim_took(database_url: str, sessions: int, steps: list[Any]) -> None:
    asyncio.run(_compare(database_url, sessions, steps))


async def _compare(database_url: str, sessions: int, steps: list[Any]) -> None:
    conn = await db.connect(database_url, application_name="claim-model")
    try:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute(OLD_CLAIM)
            ids = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT (create_session($1) ->> 'id')::uuid AS id FROM generate_series(1, $2)", USER, sessions
                )
            ]
            for op in steps:
                with contextlib.suppress(_RefusedError):
                    await apply(conn, ids, op)
            new = await claimed_by(conn, "claim_outbox")
            old = await claimed_by(conn, "pg_temp.claim_outbox_v1")
            assert new == old, f"v2 claimed {sorted(new)}, the old claim {sorted(old)}"
        finally:
            await tx.rollback()
    finally:
        await conn.close()
