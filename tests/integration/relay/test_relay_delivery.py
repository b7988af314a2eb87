"""The relay (CONTRACT section 6) as operators run it: `genesis relay` replicas against a real
PostgreSQL and a real broker, read back by a consumer of the topic."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner

from tests.relay_harness import (
    Rig,
    all_sent,
    claimed,
    events_by_session,
    eventually,
    new_session,
    submit,
    whole_story,
)


async def test_notify_wakes_the_relay_within_a_second_with_a_30s_poll(rig: Rig) -> None:
    await rig.start_relay(RELAY_POLL_INTERVAL=30)
    await asyncio.sleep(0.5)  # past the start-up drain: from here only a NOTIFY can wake it
    for _ in range(3):
        session_id = await new_session(rig.pool)
        committed = time.time()
        (event_id,) = (await events_by_session(rig.pool))[session_id]
        await rig.consumer.wait_for({event_id}, within=5)
        assert rig.consumer.received(event_id).at - committed < 1.0


async def test_a_session_longer_than_a_batch_drains_in_one_go_not_poll_by_poll(rig: Rig) -> None:
    # Committed before a relay that neither listens nor polls soon: its start-up drain must take
    # all 11 events, 3 at a time, each batch claimable only once the one before it is settled.
    session_id = await whole_story(rig.pool)
    events = (await events_by_session(rig.pool))[session_id]
    await rig.start_relay(RELAY_BATCH_SIZE=3, RELAY_LISTEN="false", RELAY_POLL_INTERVAL=30)
    await rig.consumer.wait_for(set(events), within=10)
    assert rig.consumer.first_seen()[session_id] == events


async def test_the_kafka_message_is_the_event_keyed_by_session_with_its_ids_as_headers(rig: Rig) -> None:
    await rig.start_relay()
    session_id = await new_session(rig.pool)
    await submit(rig.pool, session_id, "RequestConceptGeneration", {"count": 3})
    events = await rig.pool.fetch(
        "SELECT e.*, genesis_event_json(e) AS json FROM domain_events e WHERE aggregate_id = $1 ORDER BY id",
        uuid.UUID(session_id),
    )
    await rig.consumer.wait_for({str(e["event_id"]) for e in events}, within=10)

    columns = set(events[0].keys()) - {"json", "id"}
    for event in events:
        message = rig.consumer.received(str(event["event_id"]))
        assert message.key == session_id
        assert message.value == event["json"]
        assert set(message.value) == columns | {"sequence"}  # every domain_events column, and its order
        assert message.value["sequence"] == event["id"]
        assert {k: v for k, v in message.headers.items() if not k.startswith("ce_") and k != "content-type"} == {
            "event_id": str(event["event_id"]),
            "event_type": event["event_type"],
            "correlation_id": str(event["correlation_id"]),
            "causation_id": str(event["causation_id"] or ""),
        }  # and the CloudEvents attributes: tests/integration/relay/test_interop_records.py
    created, requested = events
    assert created["causation_id"] is None  # the header is then empty
    assert requested["causation_id"] == created["event_id"]


@pytest.mark.slow
async def test_three_replicas_deliver_every_event_of_fifty_sessions_in_session_order(rig: Rig) -> None:
    for _ in range(3):
        await rig.start_relay(RELAY_BATCH_SIZE=20, RELAY_POLL_INTERVAL=0.5)

    async def writer(n: int) -> None:
        for _ in range(n):
            await whole_story(rig.pool, pause=0.01)

    await asyncio.gather(*(writer(5) for _ in range(10)))  # 50 sessions, 10 at a time
    expected = await events_by_session(rig.pool)
    assert len(expected) == 50
    every = {e for events in expected.values() for e in events}
    assert len(every) == 50 * 11

    await rig.consumer.wait_for(every, within=60)
    first_seen = rig.consumer.first_seen()
    for session_id, events in expected.items():
        assert first_seen[session_id] == events, f"session {session_id} out of order"
    # The relay builds its own record batches; a session's partition is still the one the Java
    # client's (and aiokafka's) default partitioner picks, so other producers of the topic agree.
    partitions = [0, 1, 2]
    for record in rig.consumer.records:
        assert record.partition == DefaultPartitioner()(record.key.encode(), partitions, partitions)
    await eventually(lambda: all_sent(rig.pool), within=10, what="every row SENT")
    assert await claimed(rig.pool) == 0
    published = [await r.metric("genesis_relay_published_total") for r in rig.relays]
    assert sum(published) == len(every)  # each row marked SENT once, whoever published it
    assert all(p > 0 for p in published), published  # the three shared the work
