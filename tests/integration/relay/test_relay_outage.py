"""Publishing that fails for real: the broker cut off behind a proxy, and an event the producer refuses.
Retries on the base/2×base/4×base schedule, FAILED rows holding their session back, the circuit
breaker, readiness, and the operators' way out (`genesis outbox requeue` / `discard`)."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.relay_harness import (
    Pool,
    Rig,
    all_sent,
    bulk_backlog,
    claimed,
    events_by_session,
    eventually,
    new_session,
    open_rig,
    outbox_stats,
    outbox_status,
    submit,
)
from tests.relay_proxy import ProxiedBroker

BASE_DELAY = 0.5
EARLY = 0.05  # seconds: the database's schedule never lets a retry start sooner (clocks of two processes aside)
LATE = 0.6  # seconds, or half the wait if more: a starved 2-core machine's timer, probe and claim


async def row_of(pool: Pool, event_id: str) -> dict[str, Any]:
    row = await pool.fetchrow("SELECT * FROM event_outbox WHERE event_id = $1", uuid.UUID(event_id))
    assert row is not None
    return dict(row)


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[ProxiedBroker]:
    private = ProxiedBroker(tmp_path / "broker.log")
    await private.start()
    try:
        yield private
    finally:
        await private.stop()


@pytest.fixture
async def rig(database_url: str, broker: ProxiedBroker, tmp_path: Path) -> AsyncIterator[Rig]:
    """Here the relays reach a broker of their own through a proxy the tests can cut."""
    async with open_rig(database_url, broker.bootstrap_servers, tmp_path) as r:
        yield r


@pytest.mark.slow
async def test_broker_cut_off_fails_the_batch_in_flight_on_schedule_and_the_rest_waits(
    rig: Rig, broker: ProxiedBroker
) -> None:
    relay = await rig.start_relay(RELAY_RETRY_BASE_DELAY=BASE_DELAY, RELAY_PUBLISH_TIMEOUT=1)
    a = await new_session(rig.pool)
    await rig.consumer.wait_for(set((await events_by_session(rig.pool))[a]), within=10)
    # On the topic is not yet settled: a consumer can read it before the relay has the broker's
    # acknowledgement, and a cut then would fail that row instead of the one this test watches.
    await eventually(lambda: all_sent(rig.pool), within=10, what="the first row SENT")

    await broker.proxy.cut()

    await relay.wait_unready("while the broker is cut off")
    await submit(rig.pool, a, "RequestConceptGeneration", {})
    in_flight = (await events_by_session(rig.pool))[a][-1]

    async def tried() -> bool:
        return int((await row_of(rig.pool, in_flight))["attempts"]) >= 1

    await eventually(tried, within=10, what="the relay has the row in flight")
    # Committed while the broker is down, behind the failing row or in sessions of their own.
    await submit(rig.pool, a, "ConfirmStage", {"stage": "CONCEPT_SELECTION"})
    others = [await new_session(rig.pool) for _ in range(3)]

    async def failed() -> bool:
        return str((await row_of(rig.pool, in_flight))["status"]) == "FAILED"

    await eventually(failed, within=30, what="the in-flight row FAILED")
    row = await row_of(rig.pool, in_flight)
    assert row["attempts"] == 4  # the first publish and three retries
    assert re.match(r"^\w+Error: \S", row["last_error"]), row["last_error"]
    assert row["failed_at"] is not None
    # The claim gave the key up (claims lease keys: migration 0006).
    assert await rig.pool.fetchval("SELECT claim_token FROM outbox_heads WHERE key = $1", row["key"]) is None

    # The schedule: each retry starts base, 2×base, 4×base after the failure before it.
    lines = relay.logs()
    failures = [x for x in lines if x["message"].startswith("publish failed; retry")]
    retries = [x for x in lines if x["message"] == "retrying publish"]
    assert [x["attempt"] for x in failures] == [1, 2, 3]
    assert [x["retry"] for x in retries] == [1, 2, 3]
    waits = [r["at"] - f["at"] for f, r in zip(failures, retries, strict=True)]
    for wait, expected in zip(waits, (BASE_DELAY, 2 * BASE_DELAY, 4 * BASE_DELAY), strict=True):
        assert expected - EARLY <= wait < expected + max(LATE, expected / 2), f"retry waits {waits}"
    assert sum(1 for x in lines if x["message"].startswith("outbox rows FAILED")) == 1

    # Circuit breaker: nothing more is claimed, let alone failed, while the broker stays down.
    await eventually(lambda: _no_claims(rig.pool), within=5, what="nothing claimed")
    for _ in range(3):
        pending = await rig.pool.fetch(
            """SELECT o.*, l.claim_token FROM event_outbox o LEFT JOIN outbox_leases l ON l.id = o.id
                WHERE o.status <> 'SENT' AND o.status <> 'FAILED'"""
        )
        assert len(pending) == 1 + len(others)
        assert all(r["status"] == "PENDING" and r["claim_token"] is None and r["attempts"] == 0 for r in pending)
        assert await relay.readyz() == 503
        await asyncio.sleep(0.7)

    await broker.proxy.restore()
    await relay.wait_ready(within=20)
    every = await events_by_session(rig.pool)
    await rig.consumer.wait_for({every[s][0] for s in others}, within=20)
    assert (await outbox_stats(rig.pool))["blocked"] == 1  # a's newest event waits behind the FAILED row
    assert (await row_of(rig.pool, every[a][-1]))["status"] == "PENDING"

    code, out, _ = await rig.cli("outbox", "requeue", "--all-failed")
    assert (code, out.strip()) == (0, "requeued 1 row(s)")
    await eventually(lambda: all_sent(rig.pool), within=20, what="everything SENT after the requeue")
    assert await claimed(rig.pool) == 0
    await rig.consumer.wait_for({e for events in every.values() for e in events}, within=20)
    assert rig.consumer.first_seen()[a] == every[a]  # in order, the requeued row before `later`


@pytest.mark.slow
async def test_a_backlog_through_a_cut_off_broker_fails_one_batch_and_hands_the_next_back(
    rig: Rig, broker: ProxiedBroker
) -> None:
    # Full batches are pipelined: the second lane claims while the first publishes. When that publish
    # fails, the other lane's batch must go back untouched, not fail nor sit out its lease.
    relay = await rig.start_relay(
        RELAY_BATCH_SIZE=5, RELAY_RETRY_BASE_DELAY=0.2, RELAY_PUBLISH_TIMEOUT=1, RELAY_LEASE=60
    )
    await broker.proxy.cut()
    total = await bulk_backlog(rig.pool, sessions=40, rounds=1)  # one commit, one NOTIFY

    async def failed() -> bool:
        return (await outbox_status(rig.pool)).get("FAILED", 0) > 0

    await eventually(failed, within=30, what="the batch in flight FAILED")
    await eventually(lambda: _no_claims(rig.pool), within=5, what="the other lane's batch handed back")
    assert await outbox_status(rig.pool) == {"FAILED": 5, "PENDING": total - 5}
    untouched = await rig.pool.fetchval("SELECT count(*) FROM event_outbox WHERE status = 'PENDING' AND attempts = 0")
    assert untouched == total - 5

    await broker.proxy.restore()
    await relay.wait_ready(within=20)
    code, out, _ = await rig.cli("outbox", "requeue", "--all-failed")
    assert (code, out.strip()) == (0, "requeued 5 row(s)")
    await eventually(lambda: all_sent(rig.pool), within=30, what="everything SENT")
    every = await events_by_session(rig.pool)
    await rig.consumer.wait_for({e for events in every.values() for e in events}, within=20)


@pytest.mark.slow
async def test_a_batch_claimed_ahead_keeps_its_lease_while_it_waits_behind_a_slow_broker(
    rig: Rig, broker: ProxiedBroker
) -> None:
    # Every broker reply comes 2.5 s late: one publish fits the 4.5 s lease, but the batch the second
    # lane claims waits for the first lane's publish. Its lease must cover that wait, or it is handed
    # back (or, before relay v3, a rival claimed and published it while this relay was still sending it).
    relay = await rig.start_relay(RELAY_BATCH_SIZE=5, RELAY_LEASE=4.5, RELAY_PUBLISH_TIMEOUT=3)
    warm = await new_session(rig.pool)  # the topic's metadata is fetched before the broker slows down
    await rig.consumer.wait_for(set((await events_by_session(rig.pool))[warm]), within=10)
    broker.proxy.latency = 2.5
    total = await bulk_backlog(rig.pool, sessions=10, rounds=1)  # two full batches

    async def both_batches_claimed() -> bool:
        return await claimed(rig.pool) == total

    await eventually(both_batches_claimed, within=5, what="one batch claimed by each lane")
    stolen: set[int] = set()  # by a rival relay, from here on
    deadline = time.monotonic() + 30  # a stalled relay fails the test rather than hanging the run
    while not await all_sent(rig.pool):
        if time.monotonic() > deadline:
            raise AssertionError(f"not all sent within 30s: {await outbox_status(rig.pool)}, {len(stolen)} stolen")
        rows = await rig.pool.fetch("SELECT * FROM claim_outbox(100, '1 second')")
        if rows:
            stolen.update(r["id"] for r in rows)
            await rig.pool.fetchval("SELECT release_outbox($1, $2)", rows[0]["claim_token"], [r["id"] for r in rows])
        await asyncio.sleep(0.05)
    assert not stolen, f"a rival claimed {len(stolen)} of {total} rows a live relay held"
    assert not [x for x in relay.logs() if x["message"].startswith("publish failed")]  # none was handed back


async def _no_claims(pool: Pool) -> bool:
    return await claimed(pool) == 0


@pytest.mark.slow
async def test_a_failed_row_holds_back_its_session_only_until_discarded(rig: Rig) -> None:
    relay = await rig.start_relay(RELAY_RETRY_BASE_DELAY=0.2)
    held = await new_session(rig.pool)
    # Over the producer's 1 MiB request limit: refused on every attempt, a poison message.
    await submit(rig.pool, held, "SubmitFeedback", {"feedback": "x" * 1_100_000})
    await submit(rig.pool, held, "ConfirmStage", {"stage": "CONCEPT_SELECTION"})
    created, poison, behind = (await events_by_session(rig.pool))[held]
    others = [await new_session(rig.pool) for _ in range(3)]

    async def poison_failed() -> bool:
        return str((await row_of(rig.pool, poison))["status"]) == "FAILED"

    await eventually(poison_failed, within=20, what="the oversized row FAILED")
    row = await row_of(rig.pool, poison)
    assert row["attempts"] == 4
    assert row["last_error"].startswith("MessageSizeTooLargeError: ")
    every = await events_by_session(rig.pool)
    await rig.consumer.wait_for({created} | {every[s][0] for s in others}, within=10)  # other sessions flow
    assert (await row_of(rig.pool, behind))["status"] == "PENDING"
    assert await relay.readyz() == 200  # the broker is fine; one row is not

    expected = {"pending": 1, "claimed": 0, "retrying": 0, "blocked": 1, "blocked_sessions": 1, "failed": 1}
    assert {k: v for k, v in (await outbox_stats(rig.pool)).items() if k in expected} == expected
    code, out, _ = await rig.cli("outbox", "stats")
    assert code == 0
    assert {k: v for k, v in json.loads(out).items() if k in expected} == expected

    code, out, _ = await rig.cli("outbox", "discard", "--id", str(row["id"]), "--reason", "over 1 MiB")
    assert (code, out.strip()) == (0, f"discarded row {row['id']}")
    await rig.consumer.wait_for({behind}, within=10)
    assert rig.consumer.first_seen()[held] == [created, behind]
    discarded = await row_of(rig.pool, poison)
    assert (discarded["status"], discarded["last_error"]) == ("DISCARDED", "discarded: over 1 MiB")
    await eventually(lambda: _settled(rig.pool), within=10, what="nothing left open")


async def _settled(pool: Pool) -> bool:
    s = await outbox_stats(pool)
    return (s["pending"], s["blocked"], s["failed"]) == (0, 0, 0)
