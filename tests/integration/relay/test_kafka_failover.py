"""Apache Kafka only: a leader election inside a healthy three-node cluster is not an outage (§6).

Two relays drain 20,000 events into a 6-partition topic (replication factor 3, min.insync.replicas
2) while the node leading the most partitions is SIGKILLed: nothing FAILED, nothing lost, every
session in order, and, the producer being idempotent, every event on the topic exactly once."""

from __future__ import annotations

import collections
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.brokers import StartCluster
from tests.integration.relay.test_kafka_restart import idempotent
from tests.relay_harness import all_sent, bulk_backlog, claimed, events_by_session, eventually, open_rig, outbox_status
from tests.topic import TopicConsumer

# The contract's defaults for the publish timeout (5 s) and the lease (30 s): shorter than an election
# (the controller sees a killed node gone after broker.session.timeout.ms, 9 s), so one publish attempt
# alone would give up on the batch in flight and publish it again with a new producer id (duplicates).
# The relay waits instead while the cluster still names a leader for each partition it waits on
# (relay/publisher.py, `_electing`, up to (lease - 2) / 2), and the idempotent producer's own retries
# carry the batch to the new leader, where the broker drops what it already has.
RELAY: dict[str, Any] = {
    "RELAY_BATCH_SIZE": 100,
    "RELAY_PUBLISH_TIMEOUT": 5,
    "RELAY_LEASE": 30,
    "RELAY_RETRY_BASE_DELAY": 1,
}


@pytest.mark.slow
async def test_killing_the_node_that_leads_most_partitions_fails_nothing_and_loses_nothing(
    database_url: str, kafka_cluster: StartCluster, tmp_path: Path
) -> None:
    cluster = await kafka_cluster(3)
    topic = f"failover-{uuid.uuid4().hex[:8]}"
    await cluster.create_topic(topic, 6, replication=3)
    async with open_rig(database_url, cluster.bootstrap_servers, tmp_path, topic=topic) as rig:
        for _ in range(2):
            await rig.start_relay(**RELAY)
        assert idempotent(rig)
        total = await bulk_backlog(rig.pool, sessions=4000, rounds=5)
        assert total == 20_000

        async def draining() -> bool:
            return (await outbox_status(rig.pool)).get("SENT", 0) >= 2000

        await eventually(draining, within=120, what="both relays mid-drain", every=0.01)
        leaders = await cluster.leaders(topic)
        victim, led = collections.Counter(leaders.values()).most_common(1)[0]
        cluster.kill(victim)
        sent_at_kill = (await outbox_status(rig.pool)).get("SENT", 0)
        assert sent_at_kill < total, "the backlog was drained before the kill; the test proves nothing"

        async def moved() -> bool:
            return victim not in (await cluster.leaders(topic)).values()

        await eventually(moved, within=60, what=f"the {led} partition(s) node {victim} led elected elsewhere")
        await eventually(lambda: all_sent(rig.pool), within=300, what="every row SENT")
        assert "FAILED" not in await outbox_status(rig.pool)
        assert await claimed(rig.pool) == 0

        expected = await events_by_session(rig.pool)
        every = {e for events in expected.values() for e in events}
        consumer = TopicConsumer(cluster.bootstrap_servers, topic)
        await consumer.start()
        try:
            await consumer.wait_for(every, within=120)
            copies = collections.Counter(r.event_id for r in consumer.records)
            assert set(copies) == every
            duplicated = {e: n for e, n in copies.items() if n > 1}
            assert not duplicated, f"{len(duplicated)} event(s) on the topic more than once"
            first_seen = consumer.first_seen()
            for session_id, events in expected.items():
                assert first_seen[session_id] == events, f"session {session_id} out of order"
        finally:
            await consumer.stop()
