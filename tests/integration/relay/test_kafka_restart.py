"""Apache Kafka only: the single broker stopped mid-drain (SIGTERM, then SIGKILL) and started again on
its own data dir. What it acknowledged before the stop is still on the topic, the relay resumes by
itself, at most the batch in flight went FAILED, and a requeue gets everything SENT, in order."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from tests.brokers import StartCluster
from tests.relay_harness import (
    Rig,
    all_sent,
    bulk_backlog,
    claimed,
    events_by_session,
    eventually,
    open_rig,
    outbox_stats,
    outbox_status,
)
from tests.topic import TopicConsumer

BATCH = 50


async def sent_ids(rig: Rig) -> set[str]:
    rows = await rig.pool.fetch("SELECT event_id::text AS e FROM event_outbox WHERE status = 'SENT'")
    return {r["e"] for r in rows}


async def failures(rig: Rig) -> dict[str, int]:
    """FAILED rows by their error's first 120 characters, for a failure's message."""
    rows = await rig.pool.fetch(
        """SELECT left(last_error, 120) AS e, count(*)::int AS n FROM event_outbox
            WHERE status = 'FAILED' GROUP BY 1"""
    )
    return {r["e"]: r["n"] for r in rows}


def idempotent(rig: Rig) -> bool:
    """Every relay of the rig said at start that its producer is idempotent."""
    return all(any(x["message"].startswith("idempotent producer on") for x in r.logs()) for r in rig.relays)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
async def test_a_broker_restarted_on_its_data_keeps_what_it_acknowledged_and_the_relay_resumes(
    how: str, database_url: str, kafka_cluster: StartCluster, tmp_path: Path
) -> None:
    cluster = await kafka_cluster(1)
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    await cluster.create_topic(topic, 3)
    async with open_rig(database_url, cluster.bootstrap_servers, tmp_path, topic=topic) as rig:
        # The whole backlog first: a relay started beside the fill had drained 16,000 of its 20,000 rows by the
        # time the broker went down, which left the outage a small window to land in.
        total = await bulk_backlog(rig.pool, sessions=4000, rounds=5)
        relay = await rig.start_relay(RELAY_BATCH_SIZE=BATCH)
        assert idempotent(rig)

        async def draining() -> bool:
            return (await outbox_status(rig.pool)).get("SENT", 0) >= 1000

        await eventually(draining, within=60, what="the relay is mid-drain", every=0.01)
        if how == "SIGTERM":
            await asyncio.to_thread(cluster.terminate, 1)
        else:
            cluster.kill(1)
        await relay.wait_unready("while the broker is down", within=30)

        async def gave_up() -> bool:  # the batch in flight ran out of retries: the outage is real
            # Every retry over, not just the first FAILED row: the batch's sessions are retried over
            # several claims (each takes a retried session's later rows too, to hold them back), so
            # its rows reach FAILED a publish timeout or so apart.
            retrying = await rig.pool.fetchval(
                "SELECT count(*) FROM event_outbox WHERE status = 'PENDING' AND attempts > 0"
            )
            return (await outbox_status(rig.pool)).get("FAILED", 0) > 0 and retrying == 0

        await eventually(gave_up, within=60, what="the batch in flight FAILED")
        acknowledged = await sent_ids(rig)  # SENT = acknowledged by the broker before it went away
        assert 0 < len(acknowledged) < total
        failed = (await outbox_status(rig.pool))["FAILED"]
        assert failed <= BATCH, f"{failed} rows FAILED: more than the batch in flight"

        await asyncio.to_thread(cluster.restart, 1)
        await relay.wait_ready(within=60)

        async def resumed() -> bool:  # all that is not held behind a FAILED row goes out, untouched by us
            stats = await outbox_stats(rig.pool)
            return bool(stats["pending"] == stats["blocked"] and stats["claimed"] == 0)

        await eventually(resumed, within=120, what="the relay drains the backlog by itself")
        assert (await outbox_status(rig.pool))["FAILED"] == failed, await failures(rig)  # none since the restart
        code, out, _ = await rig.cli("outbox", "requeue", "--all-failed")
        assert (code, out.strip()) == (0, f"requeued {failed} row(s)")
        await eventually(lambda: all_sent(rig.pool), within=60, what="everything SENT after the requeue")
        assert await claimed(rig.pool) == 0

        expected = await events_by_session(rig.pool)
        fresh = TopicConsumer(cluster.bootstrap_servers, topic)  # read back from the restarted broker's disk
        await fresh.start()
        try:
            await fresh.wait_for({e for events in expected.values() for e in events}, within=120)
            assert acknowledged <= fresh.event_ids()
            first_seen = fresh.first_seen()
            for session_id, events in expected.items():
                assert first_seen[session_id] == events, f"session {session_id} out of order"
        finally:
            await fresh.stop()
