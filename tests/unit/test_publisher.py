"""relay/publisher.py's own record batches, with the producer replaced by a stand-in that refuses on demand:
a refusal at submit is an edge aiokafka 0.14 has no real way to trigger, so it cannot be injected for real."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import NotLeaderForPartitionError
from aiokafka.producer.message_accumulator import BatchBuilder

from genesis.settings import Settings
from relay.publisher import OutboxRow, Publisher
from relay.worker import _split


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
        future.set_result("acknowledged")
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
    assert all(isinstance(e, NotLeaderForPartitionError) for e in errors)
    sent, failed, held = _split(rows, errors)
    assert (sent, list(failed), [r.id for r in held]) == ([], [1], [2])
