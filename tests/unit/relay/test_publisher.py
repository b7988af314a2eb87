"""relay/publisher.py's own record batches, with the producer replaced by a stand-in that refuses or fails on
demand: a refusal at submit, or an earlier batch expiring while a later one of the same partition is acknowledged,
are edges aiokafka 0.14 has no way to trigger at will, so they cannot be injected for real here."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import NotLeaderForPartitionError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata, TopicPartition

from genesis.settings import Settings
from relay.publisher import HeldBackError, Landing, OutboxRow, Publisher
from relay.settle import published


class RefusesFirstBatch:
    """A producer whose partition refuses the first record batch submitted, and takes the rest."""

    def __init__(self) -> None:
        self.submitted: list[int] = []  # record counts of the batches taken
        self.offered = 0  # batches handed to send_batch, refused or not
        self._refused = False

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(300, 0)  # small: two 200-byte rows do not fit one batch

    async def send_batch(self, builder: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[object]:
        self.offered += 1
        if not self._refused:
            self._refused = True
            raise NotLeaderForPartitionError("refused at submit")
        self.submitted.append(builder.record_count())
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        future.set_result(RecordMetadata("t", partition, TopicPartition("t", partition), 40, -1, 0, 0))
        return future


async def test_a_refused_batch_keeps_its_partitions_later_batches_from_going_ahead_of_it() -> None:
    publisher: Any = Publisher(Settings(kafka_bootstrap_servers="127.0.0.1:9"), timeout=5.0)
    await publisher.stop()  # its own producer, never started, makes way for the stand-in
    publisher._producer = RefusesFirstBatch()
    rows = [OutboxRow(1, "t", "K", b"h" * 200, []), OutboxRow(2, "t", "K", b"f" * 200, [])]

    errors = await publisher.publish(rows)

    # Two record batches were built (the rows do not fit one); only the first was offered, and refused.
    assert publisher._producer.offered == 1
    assert publisher._producer.submitted == []  # row 2 never reached the broker ahead of row 1
    assert isinstance(errors[0], NotLeaderForPartitionError)
    assert isinstance(errors[1], HeldBackError)
    sent, failed, held, _ = published(rows, errors, [])[1:]
    assert (sent, list(failed), [r.id for r in held]) == ([], [1], [2])


class FailsFirstBatchLate:
    """A producer that takes every batch; the first one fails (expires after retriable errors) a little
    after it was taken, every later one is acknowledged at once, at offsets counted per partition."""

    def __init__(self) -> None:
        self.taken: list[int] = []  # record counts, in the order the batches were handed over
        self._next_offset = 0

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(300, 0)

    async def send_batch(self, builder: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[object]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        count = builder.record_count()
        if not self.taken:
            loop.call_later(0.05, future.set_exception, NotLeaderForPartitionError("expired after retries"))
        else:
            future.set_result(
                RecordMetadata(topic, partition, TopicPartition(topic, partition), self._next_offset, -1, 0, 0)
            )
            self._next_offset += count
        self.taken.append(count)
        return future


async def test_a_later_batch_of_a_partition_is_never_acknowledged_ahead_of_an_earlier_that_fails() -> None:
    publisher: Any = Publisher(Settings(kafka_bootstrap_servers="127.0.0.1:9"), timeout=5.0)
    await publisher.stop()
    publisher._producer = FailsFirstBatchLate()
    rows = [OutboxRow(1, "t", "K", b"h" * 200, []), OutboxRow(2, "t", "K", b"f" * 200, [])]

    outcomes = await publisher.publish(rows)

    # The second batch (row 2) goes to the producer only once the first is acknowledged; the first
    # failed, so row 2 is never handed over and cannot land on Kafka ahead of row 1.
    assert publisher._producer.taken == [1]
    assert isinstance(outcomes[0], NotLeaderForPartitionError)
    assert isinstance(outcomes[1], HeldBackError)
    sent, failed, held, _ = published(rows, outcomes, [])[1:]
    assert (sent, list(failed), [r.id for r in held]) == ([], [1], [2])


async def test_acknowledged_rows_carry_their_partition_and_consecutive_offsets() -> None:
    publisher: Any = Publisher(Settings(kafka_bootstrap_servers="127.0.0.1:9"), timeout=5.0)
    await publisher.stop()
    publisher._producer = producer = FailsFirstBatchLate()
    producer.taken.append(0)  # nothing fails
    rows = [OutboxRow(i, "t", "K", b"x" * 60, []) for i in range(1, 5)]  # four fit two 300-byte batches

    outcomes = await publisher.publish(rows)

    assert outcomes == [Landing(0, 0), Landing(0, 1), Landing(0, 2), Landing(0, 3)]
