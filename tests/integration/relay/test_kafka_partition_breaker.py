"""Apache Kafka only: the partition breaker (§6, issue 11 item 6) with a node really gone.

A 6-partition topic with replication factor 1 on three nodes: SIGKILLing one node leaves the partitions
it led with no leader at all (no replica to elect) while the cluster answers metadata. One relay, a
steady trickle of events over many sessions: the other partitions keep flowing, the dead partitions'
rows wait PENDING without being tried, nothing FAILED; once the node is back everything drains in order."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import murmur2

from tests.brokers import StartCluster
from tests.integration.relay.test_kafka_restart import idempotent
from tests.relay_harness import Pool, all_sent, complete, events_by_session, eventually, new_session, open_rig, submit

PARTITIONS = 6
SESSIONS = 36  # six per partition on average: every node's partitions have some
BATCH = 20
# The batch in flight keeps its retry schedule through the outage (§6 lets it end FAILED when the outage
# outlasts the schedule); 10 retries doubling from 1 s take 1023 s, far longer than this outage (three
# waits of at most 60 s), so none may FAIL however slow the machine.
RELAY: dict[str, Any] = {"RELAY_BATCH_SIZE": BATCH, "RELAY_MAX_RETRIES": 10, "RELAY_RETRY_BASE_DELAY": 1}


def partition_of(key: str) -> int:
    """The default partitioner's choice (the Java client's, and the relay's)."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


async def trickle(pool: Pool, sessions: list[str], stop: asyncio.Event) -> None:
    """A round of one feedback (two events) per session every 0.3 s, until `stop`."""
    n = 0
    while not stop.is_set():
        n += 1
        for session_id in sessions:
            await complete(pool, await submit(pool, session_id, "SubmitFeedback", {"feedback": f"round {n}"}))
        await asyncio.sleep(0.3)


async def rows(pool: Pool, after: int = 0) -> list[dict[str, Any]]:
    records = await pool.fetch(
        "SELECT id, key, event_id::text, status, attempts, kafka_partition FROM event_outbox WHERE id > $1", after
    )
    return [dict(r) | {"partition": partition_of(r["key"])} for r in records]


async def unsent(pool: Pool) -> str:
    """What a failed drain left: the unsent rows by status, attempts and partition, and the heads' state."""
    groups = await pool.fetch(
        "SELECT status, attempts, kafka_partition, count(*) AS n, min(id) AS first, max(next_attempt_at) AS due,"
        " max(last_error) AS error FROM event_outbox WHERE status <> 'SENT' GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 20"
    )
    heads = await pool.fetch(
        "SELECT * FROM outbox_heads WHERE key IN (SELECT key FROM event_outbox WHERE status <> 'SENT')"
        " ORDER BY key LIMIT 10"
    )
    listed = ["unsent rows:", *(str(dict(g)) for g in groups), "their heads:", *(str(dict(h)) for h in heads)]
    return "\n".join(listed)


@pytest.mark.slow
async def test_partitions_without_a_leader_wait_while_the_others_flow(
    database_url: str, kafka_cluster: StartCluster, tmp_path: Path
) -> None:
    cluster = await kafka_cluster(3)
    topic = f"breaker-{uuid.uuid4().hex[:8]}"
    # min.insync.replicas 1: the cluster's 2 cannot be met by a single replica (acks=all).
    await cluster.create_topic(topic, PARTITIONS, replication=1, configs={"min.insync.replicas": "1"})
    leaders = await cluster.leaders(topic)
    victim = leaders[0]
    dead = {p for p, node in leaders.items() if node == victim}
    assert 0 < len(dead) < PARTITIONS, leaders
    async with open_rig(database_url, cluster.bootstrap_servers, tmp_path, topic=topic) as rig:
        relay = await rig.start_relay(**RELAY)
        assert idempotent(rig)
        sessions = [await new_session(rig.pool) for _ in range(SESSIONS)]
        assert {partition_of(s) for s in sessions} >= dead, "no session on a dead partition: nothing to prove"
        stop = asyncio.Event()
        writer = asyncio.create_task(trickle(rig.pool, sessions, stop))
        try:
            await eventually(lambda: all_sent(rig.pool), within=30, what="the trickle flowing before the kill")
            cluster.kill(victim)
            killed = time.monotonic()

            async def leaderless() -> bool:  # the controller fences the node after broker.session.timeout.ms
                now = await cluster.leaders(topic)
                return all(now[p] == -1 for p in dead)

            await eventually(leaderless, within=60, what=f"node {victim}'s partitions {sorted(dead)} without a leader")

            async def breaker_open() -> bool:
                said = {x["message"] for x in relay.logs()}
                return all(f"partition {topic}-{p} has no leader; its rows wait" in said for p in dead)

            await eventually(breaker_open, within=60, what="the relay's breaker open for every dead partition")
            opened = max(r["id"] for r in await rows(rig.pool))  # rows committed from here on are beyond it

            async def live_flowing() -> bool:  # 100 events of live partitions committed since, on the topic
                on_topic = rig.consumer.event_ids()
                live = [r for r in await rows(rig.pool, opened) if r["partition"] not in dead]
                return sum(r["event_id"] in on_topic for r in live) >= 100

            await eventually(live_flowing, within=60, what="live partitions' new events reaching the topic")
            waiting = [r for r in await rows(rig.pool) if r["partition"] in dead and r["status"] != "SENT"]
            assert await leaderless(), "measured after the dead partitions got a leader again"
        finally:
            stop.set()
            await writer

        # While the node was down: its partitions' rows all PENDING (none FAILED); those committed after
        # the breaker opened never tried; only the heads claimed before it (one per session) were.
        assert waiting
        assert all(r["status"] == "PENDING" for r in waiting)
        beyond = [r for r in waiting if r["id"] > opened]
        assert beyond
        assert all(r["attempts"] == 0 for r in beyond), "rows beyond the batch in flight were tried"
        tried = [r for r in waiting if r["attempts"] > 0]
        assert len(tried) <= BATCH, f"{len(tried)} rows of the dead partitions tried"
        assert len({r["key"] for r in tried}) == len(tried), "more than one row of a session tried"
        print(f"dead partitions {sorted(dead)}: {len(waiting)} rows waited, {len(tried)} tried, {len(beyond)} beyond")

        heads_tried = max(r["attempts"] for r in await rows(rig.pool))
        await asyncio.to_thread(cluster.restart, victim)
        restarted = time.monotonic()
        # The heads tried during the outage keep their schedule (§6: never early), so the drain starts at
        # their next attempt, up to 128 s away after a long outage; and one that meets the node still
        # taking its partitions back waits the doubled delay after it.
        schedule = await rig.pool.fetchval(
            "SELECT coalesce(extract(epoch FROM max(due_at) - now()), 0) FROM outbox_heads WHERE retry"
        )
        within = max(0.0, float(schedule)) + RELAY["RELAY_RETRY_BASE_DELAY"] * 2**heads_tried + 60
        try:
            await eventually(lambda: all_sent(rig.pool), within=within, what="every row SENT after the restart")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{await unsent(rig.pool)}\n{relay.failure()}") from None
        print(
            f"node down {restarted - killed:.0f}s, the heads tried {heads_tried} times by then;"
            f" all SENT {time.monotonic() - restarted:.0f}s after the restart (their next try was {schedule:.0f}s away)"
        )
        final = await rows(rig.pool)
        assert all(r["kafka_partition"] == r["partition"] for r in final), "the test's partitioner is not the relay's"
        expected = await events_by_session(rig.pool)
        await rig.consumer.wait_for({e for events in expected.values() for e in events}, within=60)
        first_seen = rig.consumer.first_seen()
        for session_id, events in expected.items():
            assert first_seen[session_id] == events, f"session {session_id} out of order"
