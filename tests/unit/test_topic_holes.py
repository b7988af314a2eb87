"""tests/topic.py's reader and the holes the local broker can leave, with a scripted stand-in for the
consumer: a hole that fills late, and one that stays empty (integration: test_topic_consumer.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, NamedTuple

import pytest
from aiokafka.structs import TopicPartition

from tests import topic
from tests.topic import TopicConsumer, _Partition


class Message(NamedTuple):
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class Partition0:
    """One partition whose stored offsets the test chooses; each fetch returns two records at most."""

    def __init__(self, offsets: list[int]) -> None:
        self.stored = set(offsets)
        self.position = 0
        self.seeks: list[int] = []

    def store(self, offset: int) -> None:
        self.stored.add(offset)

    async def getmany(self, timeout_ms: int) -> dict[Any, list[Message]]:
        await asyncio.sleep(0.005)  # a pass over 40 records takes longer than REREAD_EVERY
        ahead = sorted(o for o in self.stored if o >= self.position)[:2]
        if not ahead:
            return {}
        self.position = ahead[-1] + 1
        return {TopicPartition("t", 0): [_message(o) for o in ahead]}

    def seek(self, _tp: object, offset: int) -> None:
        self.position = offset
        self.seeks.append(offset)

    async def stop(self) -> None:
        pass


def _message(offset: int) -> Message:
    return Message(0, offset, b"k", json.dumps({"event_id": f"e{offset}"}).encode(), [])


async def _reader(broker: Partition0) -> TopicConsumer:
    consumer = TopicConsumer("unused:9", "t")
    await consumer._consumer.stop()  # never started; the stand-in takes its place
    consumer._consumer = broker
    consumer._partitions = {0: _Partition(missing=0)}
    consumer._task = asyncio.create_task(consumer._read())
    return consumer


async def test_a_hole_that_fills_late_is_read_once_it_is_stored() -> None:
    broker = Partition0([0, 1, 3, 4, 5, 6, 7])  # offset 2 acknowledged but not stored yet
    consumer = await _reader(broker)
    try:
        await asyncio.sleep(0.2)
        assert "e2" not in consumer.event_ids()
        assert broker.seeks  # it went back, and found nothing yet
        broker.store(2)
        await consumer.wait_for({f"e{o}" for o in range(8)}, within=2)
        assert sorted(r.offset for r in consumer.records) == list(range(8))  # each once
        assert consumer.holes_filled == 1
        assert consumer.holes_abandoned == []
    finally:
        await consumer.stop()


async def test_a_hole_that_stays_empty_is_given_up_and_reading_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = Partition0([0, 1, *range(3, 40)])  # offset 2 never stored; a pass back reads 2 per fetch
    consumer = await _reader(broker)
    try:
        # Long before it gives up on the hole, going back for it does not hold the reader back.
        await consumer.wait_for({f"e{o}" for o in range(3, 40)}, within=2)
        monkeypatch.setattr(topic, "HOLE_PATIENCE", 0.3)
        broker.store(40)
        await consumer.wait_for({"e40"}, within=2)
        await asyncio.sleep(0.4)
        assert consumer.holes_abandoned == [(0, 2)]
        with pytest.raises(AssertionError, match=r"1 event\(s\) to arrive; holes given up .*\(0, 2\)"):
            await consumer.wait_for({"e2"}, within=0.1)
    finally:
        await consumer.stop()
