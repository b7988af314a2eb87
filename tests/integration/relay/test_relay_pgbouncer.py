"""Two relays behind PgBouncer (Debian 12's 1.18) in transaction pooling, set up as docs/operations.md says: claims,
settles, the sweeper and the outbox gauges through the pooler, LISTEN direct. Every event reaches the broker once
per session in order. PgBouncer as shipped (no ignore_startup_parameters), and the database migrated with the
default topic and ce_source: the relays publish to their own KAFKA_TOPIC with their own CLOUDEVENTS_SOURCE, and each
row records the topic it went to. Skipped where pgbouncer is not installed."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest

from genesis import db
from genesis.settings import Settings
from relay.service import run_relay
from tests.pgbouncer import Pooler, transaction_pooler
from tests.relay_harness import all_sent, events_by_session, eventually, whole_story
from tests.topic import TopicConsumer, create_topic

pytestmark = pytest.mark.slow
SOURCE = "/tests/pgbouncer"
SESSIONS = 20


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    name = f"pooled-{uuid.uuid4().hex[:10]}"
    await create_topic(kafka_bootstrap, name, partitions=3)
    return name


@pytest.fixture
async def pooler(pg_admin_url: str) -> AsyncIterator[Pooler]:
    async with transaction_pooler(pg_admin_url) as running:
        yield running


async def test_relays_through_transaction_pooling(
    settings: Settings, pooler: Pooler, topic: str, kafka_bootstrap: str, database_url: str
) -> None:
    pooled = dataclasses.replace(
        settings,
        database_url=pooler.url(database_url),
        listen_database_url=database_url,  # direct: LISTEN needs a session of its own
        db_statement_cache_size=0,
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic=topic,
        cloudevents_source=SOURCE,
        relay_metrics_port=0,
        relay_poll_interval=0.5,
        relay_sweep_interval=0.5,
        metrics_refresh_interval=0.5,
    )
    # Commands written through the pooler too (the pool's start-up check sees the database defaults).
    writer = await db.create_pool(
        pooled.database_url,
        application_name="psql",
        max_size=4,
        statement_cache_size=0,
    )
    consumer = TopicConsumer(kafka_bootstrap, topic)
    await consumer.start()
    stop = asyncio.Event()
    relays = [asyncio.create_task(run_relay(pooled, stop)) for _ in range(2)]
    try:
        await asyncio.gather(*(whole_story(writer) for _ in range(SESSIONS)))
        committed = await events_by_session(writer)

        async def sent() -> bool:
            assert not any(r.done() for r in relays), [r.exception() for r in relays if r.done()]
            return await all_sent(writer)

        await eventually(sent, within=60, what="every row SENT through the pooler")
        await consumer.wait_for({e for events in committed.values() for e in events}, within=30)
        # Written under migrate's defaults (stored headers), each row records the relay's topic it landed on.
        stored = await writer.fetch("SELECT DISTINCT topic, headers->>'ce_source' AS source FROM event_outbox")
        assert {tuple(r) for r in stored} == {(topic, "/infinitescribe/genesis")}
    finally:
        stop.set()
        await asyncio.gather(*relays)
        await consumer.stop()
        await writer.close()

    assert consumer.first_seen() == committed  # each session's events in commit order
    assert {r.headers["ce_source"] for r in consumer.records} == {SOURCE}
