"""examples/consumer.py against the real relay and broker: a redelivered outbox applies once."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from examples.consumer import Consumer, Projection, consume
from genesis.settings import Settings
from relay.service import run_relay
from tests.relay_harness import all_sent, eventually, new_session, submit, unsend
from tests.topic import create_topic


async def test_the_example_consumer_applies_each_event_once_under_redelivery(
    settings: Settings, kafka_bootstrap: str, conn: asyncpg.Connection[Any]
) -> None:
    topic = f"consumer-example-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic, partitions=2)

    # Four events of one session, written the way an operator would, onto this test's topic.
    await conn.execute("SELECT set_config('genesis.kafka_topic', $1, false)", topic)
    session = await new_session(conn, "alice")
    for stage in ("CONCEPT_SELECTION", "STORY_CONCEPTION", "WORLDVIEW"):
        await submit(conn, session, "ConfirmStage", {"stage": stage}, "alice")
    assert await conn.fetchval("SELECT count(*) FROM event_outbox WHERE topic = $1", topic) == 4

    relay_settings = dataclasses.replace(
        settings, kafka_bootstrap_servers=kafka_bootstrap, kafka_topic=topic, relay_metrics_port=0
    )
    stop_relay, stop_consumer = asyncio.Event(), asyncio.Event()
    consumer = Consumer(Projection())
    relay = asyncio.create_task(run_relay(relay_settings, stop_relay))
    reader = asyncio.create_task(consume(kafka_bootstrap, topic, f"group-{topic}", consumer, stop_consumer))

    def counted(outcome: str, expected: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return consumer.counts[outcome] >= expected

        return check

    try:
        await eventually(lambda: all_sent(conn), within=30, what="the relay to send all four")
        await eventually(counted("applied", 4), within=30, what="the consumer to apply all four")
        # A relay that died after Kafka acknowledged but before marking SENT: the rows go out again.
        await unsend(conn)
        await eventually(counted("duplicate", 4), within=30, what="the consumer to see all four again as duplicates")
    finally:
        stop_relay.set()
        stop_consumer.set()
        await asyncio.gather(relay, reader)

    assert consumer.counts == {"applied": 4, "duplicate": 4, "gap": 0}
    assert consumer.projection.session(session) == ("CHARACTERS", 4)
    consumer.projection.close()
