"""The outbox functions the relay stands on, called the way it calls them: claims (head of a key only,
SKIP LOCKED, leases), fencing by claim token, operators' requeue / discard / prune, and outbox_stats."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from genesis import db
from relay.worker import ADMIT_LIMIT, CLAIM
from tests.relay_harness import Pool, bulk_backlog, outbox_stats


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    # As the relay calls them: READ COMMITTED (see relay/service.py).
    p = await db.create_pool(database_url, application_name="relay-sql-test", max_size=6)
    yield p
    await p.close()


async def claim(c: Any, batch: int, lease: float = 30) -> tuple[uuid.UUID | None, list[asyncpg.Record]]:
    rows = await c.fetch(CLAIM, batch, lease, False, ADMIT_LIMIT)  # admitting new rows first, as the relay does
    tokens = {r["claim_token"] for r in rows}
    assert len(tokens) <= 1  # one claim, one token
    return (tokens.pop() if tokens else None), rows


async def keyed_ids(pool: Pool) -> dict[str, list[int]]:
    """Each key's outbox row ids, in order."""
    keys: dict[str, list[int]] = {}
    for r in await pool.fetch("SELECT id, key FROM event_outbox ORDER BY id"):
        keys.setdefault(r["key"], []).append(r["id"])
    return keys


async def test_a_key_is_claimed_only_through_its_head(pool: Pool) -> None:
    await bulk_backlog(pool, sessions=3, rounds=3)
    keys = await keyed_ids(pool)
    heads = sorted(ids[0] for ids in keys.values())

    (oldest,) = [k for k, ids in keys.items() if ids[0] == heads[0]]
    _, first = await claim(pool, 2)
    assert [r["id"] for r in first] == keys[oldest][:2]  # the oldest head's key, from its head on
    _, second = await claim(pool, 100)
    # The sessions nobody holds, whole: the first one's last row waits behind its claimed key.
    assert sorted(r["id"] for r in second) == sorted(i for k, ids in keys.items() if k != oldest for i in ids)
    assert await claim(pool, 100) == (None, [])


async def test_two_concurrent_claimers_never_share_a_row_or_a_key(pool: Pool) -> None:
    await bulk_backlog(pool, sessions=40, rounds=5)
    await pool.execute("SELECT outbox_admit_new(1000)")  # committed first, so that both claimers see every head
    async with pool.acquire() as a, pool.acquire() as b:
        async with a.transaction():  # A's claim stays uncommitted, its rows locked, while B claims
            _, rows_a = await claim(a, 25)
            _, rows_b = await asyncio.wait_for(claim(b, 25), 10)  # SKIP LOCKED: B does not wait for A
        assert rows_a
        assert rows_b
        assert not {r["id"] for r in rows_a} & {r["id"] for r in rows_b}
        assert not {r["key"] for r in rows_a} & {r["key"] for r in rows_b}


async def test_many_claimers_at_once_take_each_row_once_and_each_key_in_order(pool: Pool) -> None:
    total = await bulk_backlog(pool, sessions=40, rounds=5)
    keys = await keyed_ids(pool)
    next_index = dict.fromkeys(keys, 0)
    held: dict[str, uuid.UUID] = {}  # key → the claim holding it
    taken: list[int] = []

    async def claimer() -> None:
        async with pool.acquire() as c:
            while True:
                token, rows = await claim(c, random.randint(1, 12))
                if token is None:
                    return
                for key in {r["key"] for r in rows}:
                    assert key not in held, f"key {key} split across two live claims"
                    held[key] = token
                    run = [r["id"] for r in rows if r["key"] == key]
                    start = next_index[key]
                    assert run == keys[key][start : start + len(run)], "not the key's next rows, in order"
                    next_index[key] += len(run)
                taken.extend(r["id"] for r in rows)
                await asyncio.sleep(random.uniform(0, 0.003))
                for key in {r["key"] for r in rows}:
                    del held[key]  # before settling: never a false alarm, at worst a missed one
                ids = [r["id"] for r in rows]
                assert await c.fetchval("SELECT mark_outbox_sent($1, $2)", token, ids) == len(ids)

    await asyncio.gather(*(claimer() for _ in range(5)))
    assert sorted(taken) == sorted(i for ids in keys.values() for i in ids)
    assert len(taken) == total
    assert await pool.fetchval("SELECT count(*) FROM event_outbox WHERE status = 'SENT'") == total


async def test_a_claim_whose_lease_ran_out_cannot_settle_rows_another_relay_took(pool: Pool) -> None:
    await bulk_backlog(pool, sessions=2, rounds=2)
    slow, rows = await claim(pool, 100, lease=2)
    ids = [r["id"] for r in rows]
    assert await claim(pool, 100) == (None, [])  # leased
    await asyncio.sleep(2.1)
    fresh, again = await claim(pool, 100)
    assert [r["id"] for r in again] == ids  # the lease ran out: another relay takes them over

    for fenced in (
        "SELECT mark_outbox_sent($1, $2)",
        "SELECT mark_outbox_failed($1, $2, 'KafkaTimeoutError: late')",
        "SELECT tried FROM record_outbox_attempt($1, $2, 'KafkaTimeoutError: late')",
        "SELECT release_outbox($1, $2)",
    ):
        assert await pool.fetchval(fenced, slow, ids) == 0, fenced
    rows_now = await pool.fetch(
        "SELECT o.*, l.claim_token FROM event_outbox o LEFT JOIN outbox_leases l ON l.id = o.id ORDER BY o.id"
    )
    assert {(r["status"], r["claim_token"], r["attempts"], r["last_error"]) for r in rows_now} == {
        ("PENDING", fresh, 0, None)
    }
    assert await pool.fetchval("SELECT mark_outbox_sent($1, $2)", fresh, ids) == len(ids)


async def test_a_requeued_or_discarded_row_is_out_of_its_old_claims_reach(pool: Pool) -> None:
    await bulk_backlog(pool, sessions=2, rounds=1)
    token, rows = await claim(pool, 100)
    first, second = (r["id"] for r in rows)
    assert await pool.fetchval("SELECT mark_outbox_failed($1, $2, 'KafkaTimeoutError: gone')", token, [first, second])
    assert await pool.fetchval("SELECT requeue_outbox($1)", first) == 1
    assert await pool.fetchval("SELECT discard_outbox($1, 'bad event')", second) == 1
    assert await pool.fetchval("SELECT mark_outbox_sent($1, $2)", token, [first, second]) == 0
    requeued = await pool.fetchrow("SELECT * FROM event_outbox WHERE id = $1", first)
    assert requeued is not None
    assert (requeued["status"], requeued["attempts"], requeued["failed_at"]) == ("PENDING", 0, None)
    assert await pool.fetchval("SELECT status FROM event_outbox WHERE id = $1", second) == "DISCARDED"


async def test_operators_are_refused_what_would_break_a_claim_or_lose_a_reason(pool: Pool) -> None:
    await bulk_backlog(pool, sessions=2, rounds=1)
    token, rows = await claim(pool, 1)
    assert token is not None  # the row is held from here on
    held = rows[0]["id"]
    free = await pool.fetchval("SELECT id FROM event_outbox WHERE id NOT IN (SELECT id FROM outbox_leases)")
    with pytest.raises(asyncpg.PostgresError) as refused:
        await pool.fetchval("SELECT requeue_outbox($1)", held)  # not FAILED
    assert refused.value.sqlstate == "GS406"
    with pytest.raises(asyncpg.PostgresError) as refused:
        await pool.fetchval("SELECT discard_outbox($1, 'x')", held)  # a relay holds it
    assert refused.value.sqlstate == "GS406"
    with pytest.raises(asyncpg.PostgresError) as refused:
        await pool.fetchval("SELECT discard_outbox($1, '  ')", free)
    assert refused.value.sqlstate == "GS423"
    assert await pool.fetchval("SELECT discard_outbox($1, 'not wanted')", free) == 1  # unclaimed PENDING may go
    assert await pool.fetchval("SELECT requeue_outbox(NULL)") == 0


async def test_requeue_wakes_the_relays(pool: Pool, database_url: str) -> None:
    await bulk_backlog(pool, sessions=1, rounds=1)
    token, rows = await claim(pool, 1)
    await pool.fetchval("SELECT mark_outbox_failed($1, $2, 'E: x')", token, [rows[0]["id"]])
    listener = await db.connect(database_url, application_name="relay-sql-listener")
    woken = asyncio.Event()
    await listener.add_listener("genesis_outbox_v1", lambda *_: woken.set())
    try:
        assert await pool.fetchval("SELECT requeue_outbox(NULL)") == 1
        await asyncio.wait_for(woken.wait(), 5)
    finally:
        await listener.close()


async def test_outbox_stats_counts_backlog_claims_retries_blocked_and_failed(pool: Pool) -> None:
    await bulk_backlog(pool, sessions=3, rounds=3)  # 9 rows, 3 per session
    keys = list((await keyed_ids(pool)).values())
    failing, retrying, _ = keys
    token, _ = await claim(pool, 100)
    await pool.fetchval("SELECT mark_outbox_failed($1, $2, 'E: broker')", token, failing[:1])
    await pool.fetchval("SELECT tried FROM record_outbox_attempt($1, $2, 'E: broker')", token, retrying[:1])
    await pool.execute("UPDATE event_outbox SET created_at = now() - interval '90 seconds' WHERE id = $1", keys[2][0])
    await pool.fetchval("SELECT release_outbox($1, $2)", token, failing[1:] + keys[2])
    stats = await outbox_stats(pool)
    assert stats.pop("oldest_pending_age_seconds") >= 90
    assert stats == {
        "pending": 8,
        "claimed": 2,  # the retrying session's later rows, still held (the retrying row waits unclaimed)
        "retrying": 1,
        "blocked": 4,  # behind the FAILED row (2) and behind the retrying one (2)
        "blocked_sessions": 2,
        "failed": 1,
    }


async def test_prune_deletes_only_old_sent_rows_in_chunks(pool: Pool) -> None:
    await bulk_backlog(pool, sessions=5, rounds=1)
    token, rows = await claim(pool, 4)
    await pool.fetchval("SELECT mark_outbox_sent($1, $2)", token, [r["id"] for r in rows])
    old = [r["id"] for r in rows[:3]]
    await pool.execute("UPDATE event_outbox SET sent_at = now() - interval '2 days' WHERE id = ANY($1)", old)
    assert await pool.fetchval("SELECT prune_outbox(interval '1 day', 2)") == 2
    assert await pool.fetchval("SELECT prune_outbox(interval '1 day', 2)") == 1
    assert await pool.fetchval("SELECT prune_outbox(interval '1 day', 2)") == 0
    left = await pool.fetch("SELECT status FROM event_outbox ORDER BY id")
    assert sorted(r["status"] for r in left) == ["PENDING", "SENT"]
    assert await pool.fetchval("SELECT count(*) FROM domain_events") == 5  # the events stay


async def test_a_claim_reads_about_its_batch_not_the_backlog_even_on_stale_statistics(pool: Pool) -> None:
    await bulk_backlog(pool, sessions=2000, rounds=5)
    await pool.execute("SELECT outbox_admit_new(100000)")  # as the relays did while the rows came in
    await pool.execute("UPDATE event_outbox SET status = 'SENT', sent_at = now()")
    await pool.execute("VACUUM ANALYZE event_outbox")  # the planner now believes nothing is pending …
    await pool.execute("UPDATE event_outbox SET status = 'PENDING', sent_at = NULL")  # … as an outage ends
    for _ in range(6):  # past plpgsql's switch to generic plans
        plan = await pool.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM claim_outbox(100)")
        top = plan[0]["Plan"]
        assert top["Actual Rows"] == 100
        # Linear in the batch (~30 per row); a scan of the backlog per key reads about a million.
        assert top["Shared Hit Blocks"] + top["Shared Read Blocks"] < 10_000
