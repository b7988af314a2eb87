"""Apache Kafka only: the broker itself refuses an event. With message.max.bytes at 100 KB on the
broker, a 200 KB event (well under the producer's own 1 MiB check) goes FAILED with the broker's
error in last_error, and alone: the rows that shared its record batch go out again in batches of their own;
its session's later events wait behind it, other sessions flow."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.brokers import StartCluster
from tests.integration.relay.test_kafka_restart import idempotent
from tests.relay_harness import events_by_session, eventually, new_session, open_rig, outbox_stats, submit

BROKER_LIMIT = 100_000


@pytest.mark.slow
async def test_an_event_over_the_brokers_message_max_bytes_fails_alone_and_holds_back_its_session(
    database_url: str, kafka_cluster: StartCluster, tmp_path: Path
) -> None:
    cluster = await kafka_cluster(1, properties={"message.max.bytes": BROKER_LIMIT})
    topic = f"refusal-{uuid.uuid4().hex[:8]}"
    await cluster.create_topic(topic, 3)
    async with open_rig(database_url, cluster.bootstrap_servers, tmp_path, topic=topic) as rig:
        held = await new_session(rig.pool)
        await submit(rig.pool, held, "SubmitFeedback", {"feedback": "x" * 200_000})  # as psql would
        await submit(rig.pool, held, "ConfirmStage", {"stage": "CONCEPT_SELECTION"})
        created, big, behind = (await events_by_session(rig.pool))[held]
        # Written before the relay starts, so its first claim puts the session's three rows in one record
        # batch, which the broker refuses as a whole: only the big row may fail, not the Created before it.
        relay = await rig.start_relay(RELAY_RETRY_BASE_DELAY=0.2)
        assert idempotent(rig)

        async def status_of(event_id: str) -> str:
            return str(
                await rig.pool.fetchval("SELECT status FROM event_outbox WHERE event_id = $1", uuid.UUID(event_id))
            )

        async def big_failed() -> bool:
            return await status_of(big) == "FAILED"

        await eventually(big_failed, within=60, what="the oversized row FAILED")
        error = await rig.pool.fetchval("SELECT last_error FROM event_outbox WHERE event_id = $1", uuid.UUID(big))
        assert error.startswith("MessageSizeTooLargeError"), error
        assert "when serialized" not in error, f"the producer's own check refused it, not the broker: {error}"

        others = [await new_session(rig.pool) for _ in range(3)]
        every = await events_by_session(rig.pool)
        await rig.consumer.wait_for({created} | {every[s][0] for s in others}, within=30)  # others flow
        assert await status_of(behind) == "PENDING"  # its session waits behind it
        assert big not in rig.consumer.event_ids()
        stats = await outbox_stats(rig.pool)
        assert (stats["failed"], stats["blocked"], stats["blocked_sessions"]) == (1, 1, 1)
        assert await relay.readyz() == 200  # the broker is fine; one row is not
