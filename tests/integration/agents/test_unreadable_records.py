"""Records an agent cannot read, written for real to the real broker: a tombstone, foreign JSON, bytes that are not
UTF-8, an event's shape with ids that are not ids. The agent logs them, counts them and commits past them, and goes
on with the work behind them; a restarted agent does not meet them again."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import REGISTRY

from agents.consumer import ANY_EVENT, Agent, Event
from genesis.auth.tokens import issue_token
from genesis.settings import Settings
from tests.agent_harness import Loop, open_loop, post
from tests.relay_harness import eventually
from tests.topic import create_topic

# (key, value): what a compacting producer, another service or a broken one may leave on the topic.
POISON: list[tuple[bytes | None, bytes | None]] = [
    (b"a-session", None),  # a tombstone
    (None, b'{"event_id": "x"}'),  # JSON, but not an event
    (None, b"\xff\xfe{not utf-8"),
    (None, b"[1, 2, 3]"),
    # Shaped like an event the development agent handles, with ids that are no ids: a handler would have sent
    # them to the task routes as paths ("a/b" is a 404 of no route), and its failure report failed the same way.
    (None, json.dumps({"event_id": str(uuid.uuid4()), "event_type": "Genesis.Session.ConceptGenerationRequested",
                       "aggregate_id": str(uuid.uuid4()), "correlation_id": "a/b", "payload": {}}).encode()),
    (None, json.dumps({"event_id": str(uuid.uuid4()), "event_type": "Genesis.Session.FeedbackSubmitted",
                       "aggregate_id": "../../healthz", "correlation_id": str(uuid.uuid4()), "payload": {}}).encode()),
]  # fmt: skip


Record = tuple[bytes | None, bytes | None]


async def _produce(bootstrap: str, topic: str, records: list[Record], partition: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value=value, key=key, partition=partition)
    finally:
        await producer.stop()


def _event_record(event_type: str = "Genesis.Session.Created") -> bytes:
    event = {"event_id": str(uuid.uuid4()), "event_type": event_type, "aggregate_id": str(uuid.uuid4()), "payload": {}}
    return json.dumps(event).encode()


async def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(tp)
        return offset
    finally:
        await consumer.stop()


async def test_the_consumer_counts_unreadable_records_and_commits_past_them(kafka_bootstrap: str) -> None:
    topic, group = f"poison-{uuid.uuid4().hex[:10]}", f"group-{uuid.uuid4().hex[:10]}"
    await create_topic(kafka_bootstrap, topic, partitions=1)
    await _produce(kafka_bootstrap, topic, [*POISON, (None, _event_record())], partition=0)

    agent = Agent(bootstrap=kafka_bootstrap, topic=topic, group=group)
    seen: list[Event] = []

    @agent.handler(ANY_EVENT)
    async def handle(event: Event) -> None:
        seen.append(event)

    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))

    async def behind_the_poison() -> bool:
        assert not running.done(), running.exception() if not running.cancelled() else "cancelled"
        return bool(seen)

    try:
        await eventually(behind_the_poison, within=60, what="the event behind the unreadable records")
    finally:
        stop.set()
        await running
    assert [e.offset for e in seen] == [len(POISON)]
    assert agent.counts["unreadable"] == len(POISON)
    assert REGISTRY.get_sample_value("genesis_agent_unreadable_records_total", {"group": group}) == len(POISON)
    assert await _committed(kafka_bootstrap, group, TopicPartition(topic, 0)) == len(POISON) + 1


@pytest.fixture
async def loop(settings: Settings, kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Loop]:
    async with open_loop(settings, kafka_bootstrap, tmp_path) as world:
        yield world


def _skipped(lines: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return sorted((line["partition"], line["offset"]) for line in lines if line.get("message", "").startswith("unre"))


async def test_the_development_agent_lives_through_unreadable_records(
    loop: Loop, kafka_bootstrap: str, settings: Settings, conn: asyncpg.Connection[Any]
) -> None:
    for partition in (0, 1):
        await _produce(kafka_bootstrap, loop.topic, POISON, partition)
    token = issue_token(settings, "writer", 600)

    async def answered(agent_tail: Any) -> None:
        async with aiohttp.ClientSession() as http:
            session = (await post(http, f"{loop.base_url}/genesis/sessions", token))["id"]
            body = {"command_type": "RequestConceptGeneration", "payload": {"count": 1}}
            command = (await post(http, f"{loop.base_url}/genesis/sessions/{session}/commands", token, body))[
                "command_id"
            ]

        async def completed() -> bool:
            assert agent.process is not None
            assert agent.process.returncode is None, agent_tail()
            status = await conn.fetchval("SELECT status FROM command_inbox WHERE id = $1", uuid.UUID(command))
            return bool(status == "COMPLETED")

        await eventually(completed, within=90, what="the command answered by the agent", every=0.1)

    agent = await loop.start_agent(AGENT_STEP_DELAY="0.1")
    await answered(agent.tail)
    every_poison = [(p, o) for p in (0, 1) for o in range(len(POISON))]

    async def all_skipped() -> bool:
        # The command's event lies on one partition: the other's records may still be read after it is answered.
        return _skipped(agent.logs()) == every_poison

    try:
        await eventually(all_skipped, within=30, what="every unreadable record skipped")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {agent.tail()}") from None
    assert await agent.terminate() == 0, agent.tail()

    # Committed past: the next run of the group does not meet them again, and works.
    agent = await loop.start_agent(AGENT_STEP_DELAY="0.1")
    await answered(agent.tail)
    assert _skipped(agent.logs()) == [], agent.tail()
    assert await agent.terminate() == 0, agent.tail()
