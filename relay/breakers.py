"""The relay's two circuit breakers. While the broker does not answer at all, only due retries (the
batch in flight's) are claimed; while a partition has no leader, its fresh rows are handed back
untouched (PENDING) and other partitions flow. Leaders are looked at again before a claim, never
between a claim and its publish: that time is the claim's lease's (relay/worker.py). The relay's lanes
share one Breakers, and one look is made at a time: a lane that comes while another looks waits for
that look and uses its verdict."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Iterable

from relay.publisher import OutboxRow, Publisher

log = logging.getLogger("genesis.relay")

PARTITION_RECHECK = 1.0  # seconds between metadata checks of a partition without a leader


class Breakers:
    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self.broker_up = True  # the broker-wide breaker: False after a failed publish, until the broker answers
        self.leaderless: dict[tuple[str, int], float] = {}  # partition → when to look at its leader again
        self._looking = asyncio.Lock()

    async def recheck(self) -> None:
        """Before a claim: is the broker back, and have the partitions without a leader one again (those due)?"""
        async with self._looking:  # two looks at once would both close (or one reopen) the same breaker
            await self._recheck()

    async def _recheck(self) -> None:
        if not self.broker_up:
            self.broker_up = await self._publisher.probe()
            if self.broker_up:
                log.info("broker answers again; draining the backlog")
        now = time.monotonic()
        due = {where for where, at in self.leaderless.items() if at <= now}
        if due and not await self._publisher.probe():
            self.leaderless.clear()  # no metadata at all: publishing decides (and opens the broker-wide breaker)
            return
        for topic in {t for t, _ in due}:
            still = await self._publisher.leaderless(topic, {p for t, p in due if t == topic})
            for where in [w for w in due if w[0] == topic]:
                if where[1] in still:
                    self.leaderless[where] = time.monotonic() + PARTITION_RECHECK
                else:
                    log.info("partition %s-%d has a leader again", *where)
                    del self.leaderless[where]

    def split(self, rows: list[OutboxRow], retried: Collection[int]) -> tuple[list[OutboxRow], list[OutboxRow]]:
        """The rows to publish, and the fresh rows that wait: all of them while the broker does not
        answer (a batch claimed before the breaker opened), else those of partitions without a leader.
        Retries (`retried`: their ids) go out regardless: their schedule is the batch in flight's, and
        ends FAILED."""
        if self.broker_up and not self.leaderless:
            return rows, []
        publish: list[OutboxRow] = []
        waiting: list[OutboxRow] = []
        for row in rows:
            held = not self.broker_up or (row.topic, self._publisher.partition_of(row)) in self.leaderless
            (waiting if held and row.id not in retried else publish).append(row)
        return publish, waiting

    async def open_after(self, failed: Iterable[OutboxRow]) -> None:
        """After a failed publish: the broker-wide breaker if the broker does not answer, else the
        partition breaker of each failed row's partition that has no leader."""
        async with self._looking:
            await self._open_after(failed)

    async def _open_after(self, failed: Iterable[OutboxRow]) -> None:
        if not await self._publisher.probe():
            self.broker_up = False
            log.warning("broker does not answer; claiming only due retries until it does")
            return
        partitions: dict[str, set[int]] = {}
        for row in failed:
            partition = self._publisher.partition_of(row)
            if partition is not None:
                partitions.setdefault(row.topic, set()).add(partition)
        for topic, candidates in partitions.items():
            for partition in await self._publisher.leaderless(topic, candidates):
                log.warning("partition %s-%d has no leader; its rows wait", topic, partition)
                self.leaderless[(topic, partition)] = time.monotonic() + PARTITION_RECHECK

    def next_check(self) -> float | None:
        """Seconds until a breaker wants a look (None: both closed)."""
        if not self.broker_up:
            return 1.0
        return PARTITION_RECHECK if self.leaderless else None
