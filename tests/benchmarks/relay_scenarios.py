"""The relay benchmark's two adversarial scenarios (issue 11), shared by `make bench-relay`:

- claim latency with a pathological backlog: BENCH_SENT (300,000) SENT rows, BENCH_BLOCKED (100,000)
  PENDING rows behind one FAILED head, 50 claimable sessions; `claim_outbox(100)` timed in a
  transaction rolled back each time (so every claim sees the same outbox), p50/p99, and its plan;
- commit → topic latency of other sessions while one row retries: one row over the producer's
  1 MiB limit fails every attempt (1 s, 2 s, 4 s apart) while new sessions are committed at
  BENCH_RETRY_RATE (50) per second for the 7 s it takes; p50/p99 of their Created events.

Both use only what the relay had before v2 too (claim_outbox(100), mark_outbox_failed, the API's SQL
functions), so the same code measures the old relay for the figures in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
import uuid
from typing import Any

from genesis import db
from tests.benchmarks.harness import say
from tests.relay_harness import USER, Pool, Rig, new_session, submit
from tests.topic import TopicConsumer, create_topic

SENT = int(os.environ.get("BENCH_SENT", "300000"))
BLOCKED = int(os.environ.get("BENCH_BLOCKED", "100000"))
CLAIMABLE = 50
CLAIMS = int(os.environ.get("BENCH_CLAIMS", "200"))
RETRY_RATE = float(os.environ.get("BENCH_RETRY_RATE", "50"))
APPEND = """SELECT count(genesis_append_event(s, 'Genesis.Session.FeedbackSubmitted', jsonb_build_object('n', n),
                                            gen_random_uuid(), $3, NULL))
              FROM unnest($1::uuid[]) s, generate_series(1, $2) n"""


async def _sessions(pool: Pool, count: int) -> list[uuid.UUID]:
    rows = await pool.fetch("SELECT (create_session($1) ->> 'id')::uuid AS id FROM generate_series(1, $2)", USER, count)
    return [r["id"] for r in rows]


async def pathological_backlog(pool: Pool) -> None:
    """The outbox of the issue: a FAILED head with BLOCKED rows behind it at the lowest ids, SENT
    rows after them, and CLAIMABLE sessions with one PENDING row each at the end."""
    (failed,) = await _sessions(pool, 1)
    token = await pool.fetchval("SELECT claim_token FROM claim_outbox(1)")
    await pool.fetchval(
        "SELECT mark_outbox_failed($1, ARRAY(SELECT id FROM outbox_leases WHERE claim_token = $1), 'E: bench')", token
    )
    for done in range(0, BLOCKED, 20_000):
        await pool.execute(APPEND, [failed], min(20_000, BLOCKED - done), USER)
    sent_sessions = await _sessions(pool, SENT // 100)
    for chunk in range(0, len(sent_sessions), 200):
        await pool.execute(APPEND, sent_sessions[chunk : chunk + 200], 99, USER)
    # Settled as a relay would have left them; the v2 heads table (when there is one) follows.
    await pool.execute(
        "UPDATE event_outbox SET status = 'SENT', sent_at = now(), attempts = 1 WHERE key = ANY($1::text[])",
        [str(s) for s in sent_sessions],
    )
    if await pool.fetchval("SELECT to_regclass('outbox_heads') IS NOT NULL"):
        sent_keys = [str(s) for s in sent_sessions]
        await pool.execute("DELETE FROM outbox_heads WHERE key = ANY($1::text[])", sent_keys)
        await pool.execute("DELETE FROM outbox_new_rows WHERE key = ANY($1::text[])", sent_keys)
    await _sessions(pool, CLAIMABLE)
    await pool.execute("VACUUM ANALYZE event_outbox")
    if await pool.fetchval("SELECT to_regclass('outbox_heads') IS NOT NULL"):
        # Admitted as the relays admit new rows while they come in, so the claims timed find none left.
        while await pool.fetchval("SELECT outbox_admit_new(10000)"):
            pass
        await pool.execute("VACUUM ANALYZE outbox_heads")
        await pool.execute("VACUUM ANALYZE outbox_new_rows")


async def claim_latency(pool: Pool) -> dict[str, Any]:
    """claim_outbox(100) on the pathological backlog: p50/p99 ms over CLAIMS claims, and the plan."""
    say(f"claim latency: {SENT} SENT, {BLOCKED} PENDING behind a FAILED head, {CLAIMABLE} claimable …")
    await pathological_backlog(pool)
    times: list[float] = []
    claimed = 0
    async with pool.acquire() as conn:
        for _ in range(CLAIMS):
            tx = conn.transaction()
            await tx.start()
            started = time.perf_counter()
            claimed = len(await conn.fetch("SELECT * FROM claim_outbox(100)"))
            times.append((time.perf_counter() - started) * 1000)
            await tx.rollback()
        await conn.execute("LOAD 'auto_explain'")
        await conn.execute("SET auto_explain.log_min_duration = 0")
        await conn.execute("SET auto_explain.log_nested_statements = on")
        await conn.execute("SET auto_explain.log_analyze = on")
        await conn.execute("SET client_min_messages = log")
        plans: list[str] = []
        conn.add_log_listener(lambda _c, message: plans.append(message.message))
        tx = conn.transaction()
        await tx.start()
        await conn.fetch("SELECT * FROM claim_outbox(100)")
        await tx.rollback()
    cuts = statistics.quantiles(times, n=100)
    return {"claimed": claimed, "p50": cuts[49], "p99": cuts[98], "max": max(times), "plans": plans}


async def latency_while_retrying(rig: Rig, relay_settings: dict[str, Any]) -> dict[str, Any]:
    """Commit → consumer of new sessions' Created events while one oversized row fails every attempt."""
    say(f"commit → topic for other sessions while one row retries, {RETRY_RATE:g} sessions/s …")
    topic = f"bench-retry-{uuid.uuid4().hex[:8]}"
    await create_topic(rig.bootstrap, topic, 6)
    consumer = TopicConsumer(rig.bootstrap, topic)
    await consumer.start()
    before = await rig.pool.fetchval("SELECT coalesce(max(id), 0) FROM event_outbox")
    relay = await rig.start_relay(**relay_settings, KAFKA_TOPIC=topic, RELAY_RETRY_BASE_DELAY=1)
    try:
        async with contextlib.AsyncExitStack() as stack:
            conn = await db.create_pool(rig.database_url, application_name="bench", max_size=2)
            stack.push_async_callback(conn.close)
            poison = await new_session(conn)
            await submit(conn, poison, "SubmitFeedback", {"feedback": "x" * 1_100_000})
            committed: dict[str, float] = {}
            started = time.perf_counter()
            count = int(RETRY_RATE * 6.5)  # inside the row's 7 s of retries
            for i in range(count):
                await asyncio.sleep(max(0.0, started + i / RETRY_RATE - time.perf_counter()))
                session = await new_session(conn)
                at = time.time()
                event_id = await conn.fetchval(
                    "SELECT last_event_id FROM genesis_sessions WHERE id = $1::uuid", session
                )
                committed[str(event_id)] = at
            status = await conn.fetchval(
                "SELECT status FROM event_outbox WHERE key = $1 ORDER BY id DESC LIMIT 1", poison
            )
        await consumer.wait_for(set(committed), within=60)
        received = {r.event_id: r.at for r in consumer.records}
        ms = sorted((received[e] - t) * 1000 for e, t in committed.items())
        cuts = statistics.quantiles(ms, n=100)
        return {
            "events": len(ms),
            "p50": cuts[49],
            "p99": cuts[98],
            "max": ms[-1],
            "still_retrying": status == "PENDING",
        }
    finally:
        await relay.close()
        await consumer.stop()
        # Its rows go, the oversized one above all: the next broker's baselines read the whole outbox.
        await rig.pool.execute("DELETE FROM outbox_heads WHERE head_id > $1", before)
        await rig.pool.execute("DELETE FROM outbox_new_rows WHERE outbox_id > $1", before)
        await rig.pool.execute("DELETE FROM event_outbox WHERE id > $1", before)
        await rig.pool.execute("VACUUM ANALYZE event_outbox")
