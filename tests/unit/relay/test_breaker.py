"""The relay worker's partition breaker, on a real PostgreSQL with a stand-in broker: a partition without a
leader while the cluster answers metadata cannot be made on the local Tansu broker (one node, always the
leader), so the stand-in says which partition has none. The real-Kafka suite repeats it with a killed node."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiokafka.errors import NotLeaderForPartitionError

from genesis import db
from relay.breakers import PARTITION_RECHECK, Breakers
from relay.publisher import Landing, OutboxRow, Outcome
from relay.worker import RelayWorker
from tests.relay_harness import Pool, bulk_backlog

PARTITIONS = 3
DOWN = 1  # the partition without a leader


class OnePartitionLeaderless:
    """Publishes to partitions 0 and 2; partition 1 has no leader until `elect()`."""

    longest = 2.0

    def __init__(self) -> None:
        self.leader = False
        self.sent: list[int] = []  # outbox ids acknowledged, in order
        self.offered_while_down: list[int] = []  # outbox ids handed over while partition 1 had no leader

    def partition_of(self, row: OutboxRow) -> int:
        return uuid.UUID(row.key).int % PARTITIONS

    async def leaderless(self, topic: str, partitions: set[int]) -> set[int]:
        return set() if self.leader else partitions & {DOWN}

    async def probe(self) -> bool:
        return True  # the cluster answers metadata throughout

    async def publish(self, rows: Sequence[OutboxRow], deadline: float | None = None) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for row in rows:
            partition = self.partition_of(row)
            if partition == DOWN and not self.leader:
                self.offered_while_down.append(row.id)
                outcomes.append(NotLeaderForPartitionError("no leader"))
            else:
                self.sent.append(row.id)
                outcomes.append(Landing(partition, len(self.sent)))
        return outcomes


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    p = await db.create_pool(database_url, application_name="breaker-test")
    yield p
    await p.close()


async def test_a_partition_without_a_leader_keeps_its_rows_pending_while_the_others_flow(pool: Pool) -> None:
    broker = OnePartitionLeaderless()
    worker = RelayWorker(
        pool, broker,  # type: ignore[arg-type]
        batch_size=5, poll_interval=5, max_retries=3, retry_base_delay=1.5, lease=30, topic="t", source="/t",
    )  # fmt: skip
    await bulk_backlog(pool, sessions=60, rounds=1)
    rows = await pool.fetch("SELECT id, key FROM event_outbox ORDER BY id")
    down = {r["id"] for r in rows if uuid.UUID(r["key"]).int % PARTITIONS == DOWN}
    assert 5 < len(down) < len(rows) - 5
    stop = asyncio.Event()

    await worker.drain(stop)

    # Only the batch in flight when the partition lost its leader was tried (and will retry).
    assert set(broker.offered_while_down) <= down
    assert len(broker.offered_while_down) <= 5
    status: dict[int, Any] = {
        r["id"]: r
        for r in await pool.fetch(
            "SELECT o.*, l.claim_token FROM event_outbox o LEFT JOIN outbox_leases l ON l.id = o.id"
        )
    }
    assert all(status[i]["status"] == "SENT" for i in status if i not in down)
    assert all(status[i]["status"] == "PENDING" for i in down)
    untouched = [i for i in down if i not in broker.offered_while_down]
    assert untouched
    assert all(status[i]["attempts"] == 0 and status[i]["claim_token"] is None for i in untouched)

    broker.leader = True  # a new leader is elected
    await asyncio.sleep(max(PARTITION_RECHECK, 1.5) + 0.1)  # the partition looked at again, the retries due
    await worker.drain(stop)
    assert await pool.fetchval("SELECT count(*) FROM event_outbox WHERE status <> 'SENT'") == 0
    assert set(broker.sent) == {r["id"] for r in rows}


class LeaderBackSlowly:
    """Every partition has a leader again, and the metadata that says so takes a moment to come."""

    def __init__(self) -> None:
        self.looks = 0

    async def probe(self) -> bool:
        return True

    async def leaderless(self, topic: str, partitions: set[int]) -> set[int]:
        self.looks += 1
        await asyncio.sleep(0.05)
        return set()


async def test_two_lanes_looking_at_once_close_a_partition_breaker_once(caplog: pytest.LogCaptureFixture) -> None:
    """The relay's lanes share the breakers. Two that came to look at the same due partitions at once
    both closed them, and the second `del` killed the relay (a KeyError in CI, on Apache Kafka)."""
    broker = LeaderBackSlowly()
    breakers = Breakers(broker)  # type: ignore[arg-type]
    breakers.leaderless = {("t", 0): 0.0, ("t", 4): 0.0}  # both due for a look
    with caplog.at_level(logging.INFO, logger="genesis.relay"):
        await asyncio.gather(breakers.recheck(), breakers.recheck(), breakers.recheck())
    assert breakers.leaderless == {}
    assert broker.looks == 1, "the lanes that waited used the first look's verdict"
    closed = [r.getMessage() for r in caplog.records if "has a leader again" in r.getMessage()]
    assert sorted(closed) == ["partition t-0 has a leader again", "partition t-4 has a leader again"]
