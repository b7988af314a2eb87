"""examples/consumer.py against the real relay and broker: a redelivered outbox applies once."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from examples.consumer import Consumer, Projection, consume
from genesis.settings import Settings
from relay.service import run_relay


async def wait_for(condition: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    for _ in range(int(within / 0.05)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within}s")


async def test_the_example_consumer_applies_each_event_once_under_redelivery(
    settings: Settings, kafka_bootstrap: str, conn: asyncpg.Connection[Any]
) -> None:
    topic = f"consumer-example-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()

    # Four events of one session, written the way an operator would, onto this test's topic.
    await conn.execute("SELECT set_config('genesis.kafka_topic', $1, false)", topic)
    session = (await conn.fetchval("SELECT create_session('alice')"))["id"]
    for stage in ("CONCEPT_SELECTION", "STORY_CONCEPTION", "WORLDVIEW"):
        await conn.fetchrow(
            "SELECT * FROM submit_command($1, 'ConfirmStage', $2, 'alice')", uuid.UUID(session), {"stage": stage}
        )
    assert await conn.fetchval("SELECT count(*) FROM event_outbox WHERE topic = $1", topic) == 4

    relay_settings = dataclasses.replace(
        settings, kafka_bootstrap_servers=kafka_bootstrap, kafka_topic=topic, relay_metrics_port=0
    )
    stop_relay, stop_consumer = asyncio.Event(), asyncio.Event()
    consumer = Consumer(Projection())
    relay = asyncio.create_task(run_relay(relay_settings, stop_relay))
    reader = asyncio.create_task(consume(kafka_bootstrap, topic, f"group-{topic}", consumer, stop_consumer))

    async def all_sent() -> bool:
        unsent: int = await conn.fetchval("SELECT count(*) FROM event_outbox WHERE status <> 'SENT'")
        return unsent == 0

    def counted(outcome: str, expected: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return consumer.counts[outcome] >= expected

        return check

    try:
        await wait_for(all_sent)
        await wait_for(counted("applied", 4))
        # A relay that died after Kafka acknowledged but before marking SENT: the rows go out again.
        await conn.execute("UPDATE event_outbox SET status = 'PENDING', sent_at = NULL")
        await conn.execute("SELECT pg_notify('genesis_outbox_v1', '')")
        await wait_for(counted("duplicate", 4))
    finally:
        stop_relay.set()
        stop_consumer.set()
        await asyncio.gather(relay, reader)

    assert consumer.counts == {"applied": 4, "duplicate": 4, "gap": 0}
    assert consumer.projection.session(session) == ("CHARACTERS", 4)
    consumer.projection.close()
