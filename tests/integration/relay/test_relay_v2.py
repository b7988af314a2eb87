"""Relay v2 (CONTRACT §6): retries scheduled in the database while the replica goes on with other sessions,
where each SENT row landed, fencing that ends publishing, long sessions drained by replicas in turn."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid

import pytest

from tests.relay_harness import (
    STAGES,
    Rig,
    all_sent,
    bulk_backlog,
    events_by_session,
    eventually,
    new_session,
    submit,
)

LOAD_MARGIN = 0.05  # seconds a lower bound may be missed by: timestamps of two processes, log resolution


async def test_each_sent_row_records_the_partition_and_offset_it_landed_at(rig: Rig) -> None:
    await rig.start_relay()
    sessions = [await new_session(rig.pool) for _ in range(6)]
    for s in sessions:
        await submit(rig.pool, s, "RequestConceptGeneration", {})
    every = await events_by_session(rig.pool)
    await rig.consumer.wait_for({e for events in every.values() for e in events}, within=20)
    await eventually(lambda: all_sent(rig.pool), within=10, what="all SENT")
    landed = {
        str(r["event_id"]): (r["kafka_partition"], r["kafka_offset"])
        for r in await rig.pool.fetch("SELECT event_id, kafka_partition, kafka_offset FROM event_outbox")
    }
    seen = {r.event_id: (r.partition, r.offset) for r in rig.consumer.records}
    assert landed == {e: seen[e] for e in landed}


@pytest.mark.slow
async def test_a_row_failing_every_attempt_holds_only_its_session_and_fails_on_schedule(rig: Rig) -> None:
    relay = await rig.start_relay(RELAY_RETRY_BASE_DELAY=1)  # the contract's 1 s, 2 s, 4 s
    held = await new_session(rig.pool)
    # Over the producer's 1 MiB request limit: refused on every attempt, for real.
    await submit(rig.pool, held, "SubmitFeedback", {"feedback": "x" * 1_100_000})
    poison = (await events_by_session(rig.pool))[held][-1]
    others = [await new_session(rig.pool) for _ in range(3)]
    await rig.consumer.wait_for({(await events_by_session(rig.pool))[s][0] for s in others}, within=10)

    # While the row waits for its retries (7 s in all), each other session's new event reaches the
    # topic within a second of its commit: the replica is not sleeping through the retry.
    lags: list[float] = []
    for stage in STAGES[:3]:
        for s in others:
            await submit(rig.pool, s, "ConfirmStage", {"stage": stage})
            committed = time.time()
            event = (await events_by_session(rig.pool))[s][-1]
            await rig.consumer.wait_for({event}, within=10)
            lags.append(next(r.at for r in rig.consumer.records if r.event_id == event) - committed)
        await asyncio.sleep(0.5)
    row = await rig.pool.fetchrow("SELECT * FROM event_outbox WHERE event_id = $1", uuid.UUID(poison))
    assert row is not None
    assert row["status"] == "PENDING", "the test ran past the row's retries; it proves nothing then"
    assert max(lags) < 1.0, f"commit → topic while a row retries: {lags}"

    async def failed() -> bool:
        return (
            await rig.pool.fetchval("SELECT status = 'FAILED' FROM event_outbox WHERE event_id = $1", uuid.UUID(poison))
            is True
        )

    await eventually(failed, within=20, what="the row FAILED")
    row = await rig.pool.fetchrow("SELECT * FROM event_outbox WHERE event_id = $1", uuid.UUID(poison))
    assert row is not None
    assert row["attempts"] == 4
    assert row["last_error"].startswith("MessageSizeTooLargeError: ")
    assert row["failed_at"] is not None
    lines = relay.logs()
    failures = [x for x in lines if x["message"].startswith("publish failed; retry")]
    retries = [x for x in lines if x["message"] == "retrying publish"]
    assert [x["attempt"] for x in failures] == [1, 2, 3]
    # Each failure line names the event and its command's correlation id, as the outbox headers have them.
    gave_up = [x for x in lines if x["message"].startswith("outbox rows FAILED")]
    correlation = row["headers"]["correlation_id"]
    for line in [*failures, *gave_up]:
        assert (line["event_ids"], line["correlation_ids"]) == ([poison], [correlation]), line
    assert len(gave_up) == 1
    waits = [r["at"] - f["at"] for f, r in zip(failures, retries, strict=True)]
    for wait, at_least in zip(waits, (1, 2, 4), strict=True):
        assert wait >= at_least - LOAD_MARGIN, f"retry waits {waits}"


async def test_a_row_discarded_while_it_waits_for_its_retry_never_reaches_the_topic(rig: Rig) -> None:
    await rig.start_relay(RELAY_RETRY_BASE_DELAY=3)
    held = await new_session(rig.pool)
    await submit(rig.pool, held, "SubmitFeedback", {"feedback": "x" * 1_100_000})
    await submit(rig.pool, held, "ConfirmStage", {"stage": "CONCEPT_SELECTION"})
    created, poison, behind = (await events_by_session(rig.pool))[held]

    async def waiting() -> bool:
        row = await rig.pool.fetchrow("SELECT * FROM event_outbox WHERE event_id = $1", uuid.UUID(poison))
        if row is None or row["attempts"] != 1:
            return False
        return not await rig.pool.fetchval("SELECT EXISTS (SELECT FROM outbox_leases WHERE id = $1)", row["id"])

    await eventually(waiting, within=10, what="the row waits for its first retry")
    row_id = await rig.pool.fetchval("SELECT id FROM event_outbox WHERE event_id = $1", uuid.UUID(poison))
    code, _, err = await rig.cli("outbox", "discard", "--id", str(row_id), "--reason", "not wanted")
    assert code == 0, err
    await rig.consumer.wait_for({created, behind}, within=10)  # its session flows on at once
    await asyncio.sleep(4)  # past the retry it was waiting for
    assert poison not in {r.event_id for r in rig.consumer.records}
    assert rig.consumer.first_seen()[held] == [created, behind]


@pytest.mark.slow
async def test_a_relay_whose_lease_ran_out_drops_the_claim_and_the_new_holder_publishes(rig: Rig) -> None:
    # A is frozen (SIGSTOP) while it holds a claim; the lease runs out, B takes the rows over and
    # publishes them. A, thawed, finds its claim gone when it settles, and publishes none of it again.
    a = await rig.start_relay(RELAY_BATCH_SIZE=5, RELAY_LEASE=2.5, RELAY_PUBLISH_TIMEOUT=0.9)
    total = await bulk_backlog(rig.pool, sessions=400, rounds=5)
    deadline = time.monotonic() + 20
    while True:
        os.kill(a.pid, signal.SIGSTOP)
        held = await rig.pool.fetch(
            """SELECT o.id, o.event_id, l.claim_token FROM outbox_leases l JOIN event_outbox o ON o.id = l.id
                WHERE l.claimed_until > now()"""
        )
        if held or time.monotonic() > deadline:
            break
        os.kill(a.pid, signal.SIGCONT)
        await asyncio.sleep(0.01)
    try:
        assert held, "A never held a claim"
        await asyncio.sleep(4.5)  # past A's leases (every lane's)
        b = await rig.start_relay()
        await eventually(lambda: all_sent(rig.pool), within=60, what="B publishes everything")
    finally:
        os.kill(a.pid, signal.SIGCONT)
    await eventually(
        lambda: asyncio.sleep(0, any(x["message"].startswith("claim lost") for x in a.logs())),
        within=10,
        what="A learns its claim is gone",
    )
    every = await events_by_session(rig.pool)
    await rig.consumer.wait_for({e for events in every.values() for e in events}, within=30)
    await asyncio.sleep(1)
    copies = [r.event_id for r in rig.consumer.records]
    # At least once: A may have sent a row just before it froze; never again after it thawed.
    assert all(copies.count(str(r["event_id"])) <= 2 for r in held)
    assert len(set(copies)) >= total
    await b.close()


APPEND = """SELECT count(genesis_append_event(s, 'Genesis.Session.FeedbackSubmitted', jsonb_build_object('n', n),
                                         gen_random_uuid(), 'relay-tester', NULL))
         FROM unnest($1::uuid[]) s, generate_series(1, $2) n"""


async def _claim_blocks(rig: Rig, sessions: list[uuid.UUID], each: int) -> int:
    """Shared buffers one claim_outbox(100) touches over `each` new events of each session, its own statements'
    included (EXPLAIN counts every buffer the backend uses while the node runs). The events stay uncommitted
    and are rolled back: the running relays never see them, and the outbox is left as it was."""
    async with rig.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute(APPEND, sessions, each)
            while await conn.fetchval("SELECT outbox_admit_new(1000)"):  # admission is O(admit), not measured
                pass
            plan = await conn.fetchval(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM claim_outbox(100, '30 seconds', false, 0)"
            )
        finally:
            await tx.rollback()
    top = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]  # the pools decode json
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


@pytest.mark.slow
async def test_one_long_session_is_claimed_at_the_cost_of_a_batch_and_drained_by_two_replicas(rig: Rig) -> None:
    async def backlog(sessions: int, each: int) -> int:
        ids = [uuid.UUID(await new_session(rig.pool)) for _ in range(sessions)]
        await eventually(lambda: all_sent(rig.pool), within=30, what="set-up SENT")
        blocks = await _claim_blocks(rig, ids, each)
        await rig.pool.execute(APPEND, ids, each)  # one commit of `each` events per session
        await eventually(lambda: all_sent(rig.pool), within=300, what="drained", every=0.1)
        return blocks

    # What the test guards is a long session's claim costing O(batch), never O(session): before relay v2,
    # 20,000 rows of one session took minutes to drain. Measured in buffers, not seconds, so that the
    # machine's load cannot decide it: a claim that read the session's rows would touch thousands of pages.
    replicas = [await rig.start_relay(LOG_LEVEL="WARNING") for _ in range(2)]
    many = await backlog(200, 100)
    one = await backlog(1, 20_000)
    await asyncio.gather(*(r.close() for r in replicas))
    print(f"claim_outbox(100) buffers: one session of 20,000 rows {one}, 200 sessions of 100 rows {many}")
    assert one <= 2 * many, f"one long session's claim touched {one} buffers, 200 sessions' {many}"
