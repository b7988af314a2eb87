"""The topic the relay tests read: creating it, and a consumer that reads all of it.

The local broker (Tansu 0.6, memory store) raises a partition's high watermark before it stores the
produced batch. A fetch that races two producers can therefore return a later batch and pass over an
earlier one that lands a moment later: a consumer at the newer offset never sees it, though it was
acknowledged and a fresh read finds it. Offsets of a plain Kafka topic have no holes, so this reader
treats a hole as "not stored yet" and reads it again until it fills (see TopicConsumer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

HOLE_PATIENCE = 10.0  # seconds a hole is read again before it counts as empty for good
REREAD_EVERY = 0.05  # seconds between two reads of the same hole


async def create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


@dataclass(frozen=True)
class Received:
    partition: int
    offset: int
    key: str
    value: dict[str, Any]
    headers: dict[str, str]
    at: float  # time.time() when the consumer got it

    @property
    def event_id(self) -> str:
        return str(self.value["event_id"])


@dataclass
class _Partition:
    """What one partition's reader has read: the offsets, the first one missing, the last one."""

    missing: int  # the lowest offset not read yet
    top: int = -1
    offsets: set[int] = field(default_factory=set)
    hole_since: float = 0.0  # when `missing` was first seen to be a hole (0: no hole)
    reread_at: float = 0.0  # no pass back before this
    pass_end: int = -1  # a pass back over the hole is under way until it reaches this offset
    pass_started: float = 0.0


class TopicConsumer:
    """Reads a whole topic from the beginning, without a consumer group, into `records`.

    Each offset is recorded once. When a partition has a hole (a later offset read, an earlier one
    not), the reader seeks back to it and reads on from there; after each such pass it reads on as
    long again (REREAD_EVERY at least) before the next, until the hole fills. After HOLE_PATIENCE it
    gives up on that hole, so a record that is really missing still fails the test waiting for it.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.records: list[Received] = []
        self.holes_filled = 0  # records read only on a second look (the broker race above)
        self.holes_abandoned: list[tuple[int, int]] = []  # (partition, offset) given up after HOLE_PATIENCE
        self._event_ids: set[str] = set()
        self._arrived = asyncio.Event()
        self._partitions: dict[int, _Partition] = {}
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=20,
            request_timeout_ms=10_000,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        partitions: set[int] | None = None
        for _ in range(100):
            partitions = self._consumer.partitions_for_topic(self.topic)
            if partitions:
                break
            await self._consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        assert partitions, f"topic {self.topic} has no partitions"
        assignment = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(assignment)
        starts = await self._consumer.beginning_offsets(assignment)
        self._partitions = {tp.partition: _Partition(missing=offset) for tp, offset in starts.items()}
        await self._consumer.seek_to_beginning(*assignment)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            now = time.time()
            fresh = False
            for tp, messages in batches.items():
                part = self._partitions[tp.partition]
                for m in messages:
                    if 0 <= part.pass_end <= m.offset:  # the pass is back where it began: read on
                        # for as long as it took (REREAD_EVERY at least) before the next one
                        part.pass_end = -1
                        part.reread_at = time.monotonic() + max(REREAD_EVERY, time.monotonic() - part.pass_started)
                    if m.offset in part.offsets:
                        continue  # read again while going back for a hole
                    if m.offset < part.top:
                        self.holes_filled += 1
                    part.offsets.add(m.offset)
                    part.top = max(part.top, m.offset)
                    record = Received(
                        partition=m.partition,
                        offset=m.offset,
                        key=m.key.decode(),
                        value=json.loads(m.value),
                        headers={k: v.decode() for k, v in m.headers},
                        at=now,
                    )
                    self.records.append(record)
                    self._event_ids.add(record.event_id)
                    fresh = True
            if fresh:
                self._arrived.set()
            self._go_back_for_holes()

    def _go_back_for_holes(self) -> None:
        now = time.monotonic()
        for number, part in self._partitions.items():
            before = part.missing
            while part.missing in part.offsets:
                part.missing += 1
            if part.missing > part.top or part.missing != before:
                part.hole_since = 0.0  # no hole, or a new one
            if part.missing > part.top:
                continue
            part.hole_since = part.hole_since or now
            if now - part.hole_since > HOLE_PATIENCE:  # empty for good: go on from the next offset read
                self.holes_abandoned.append((number, part.missing))
                part.missing = min(o for o in part.offsets if o > part.missing)
                part.hole_since = 0.0
            elif part.pass_end < 0 and now >= part.reread_at:
                # One pass at a time, with reading on between passes: going back mid-pass, or at
                # once after one, would hardly get past a hole that stays empty (a failed write).
                part.pass_end, part.pass_started = part.top, now
                self._consumer.seek(TopicPartition(self.topic, number), part.missing)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self._consumer.stop()
        except asyncio.CancelledError:
            # aiokafka lets the cancellation of a fetch retrying against a cut-off broker escape from
            # stop(); out of a fixture's teardown it would break every later test's fixtures.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being cancelled ourselves

    def event_ids(self) -> set[str]:
        return set(self._event_ids)

    def received(self, event_id: str) -> Received:
        return next(r for r in self.records if r.event_id == event_id)

    async def wait_for(self, event_ids: set[str], within: float) -> None:
        try:
            async with asyncio.timeout(within):
                while not event_ids <= self._event_ids:
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            missing = len(event_ids - self._event_ids)
            gave_up = f"; holes given up (partition, offset): {self.holes_abandoned}" if self.holes_abandoned else ""
            raise AssertionError(f"not within {within}s: {missing} event(s) to arrive{gave_up}") from None

    def first_seen(self) -> dict[str, list[str]]:
        """Per key, the event ids in the order they first reached the topic (duplicates dropped)."""
        order: dict[str, list[str]] = {}
        for r in sorted(self.records, key=lambda r: (r.partition, r.offset)):
            seen = order.setdefault(r.key, [])
            if r.event_id not in seen:
                seen.append(r.event_id)
        return order
