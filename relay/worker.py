"""The relay loop: wait for a NOTIFY, the poll interval, the next due retry or stop; then drain the outbox.

A drain runs lanes: each claims a batch, publishes it and settles it, in that order, and claims
again until a claim comes back empty. Through a backlog a second lane claims while the first
publishes, so PostgreSQL and the broker work at the same time. Lanes never share anything but the
producer: every claim has a token of its own and its own keys (claim_outbox), so whatever a lane
settles or hands back, at any moment and on any path (a stop, an error, a lost claim), can touch no
row of another lane's. A lane's own steps follow each other; nothing runs ahead of a settle.

Retries are data, not sleeps: a failed publish is recorded by record_outbox_attempt, which schedules
the row's next attempt (base × 2ⁿ⁻¹) or FAILs it, and the relay goes straight on with other work.
Claims take due retries first, so any free replica makes the retry; the row's key stays held by its
schedule meanwhile. The circuit breakers are relay/breakers.py's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

import asyncpg

from genesis import db
from genesis.waits import first_set, stopped_within
from relay import metrics, tracing
from relay.breakers import Breakers
from relay.publisher import OutboxRow, Publisher, headers_from_json
from relay.settle import Settler, published

log = logging.getLogger("genesis.relay")

CLAIM = """
    SELECT id, key, payload::text AS value, headers::text AS headers, attempts, claim_token
      FROM claim_outbox($1, make_interval(secs => $2), $3, $4)
"""
ADMIT_LIMIT = 5000  # rows admitted per claim at most: a burst is admitted over a few claims
NEXT_DUE = "SELECT extract(epoch FROM min(due_at) - now()) FROM outbox_heads WHERE retry AND NOT blocked"
# Batches in flight at once: while one is published, the other is claimed or settled. One lane
# drains a backlog at about half the rate (docs/benchmarks.md); a third adds nothing on two cores.
LANES = 2


class Claim(NamedTuple):
    rows: list[OutboxRow]
    token: uuid.UUID
    deadline: float  # time.monotonic() when its lease runs out, counted from before the claim was sent


class RelayWorker:
    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        publisher: Publisher,
        *,
        batch_size: int,
        poll_interval: float,
        max_retries: int,
        retry_base_delay: float,
        lease: float,
        topic: str,
        source: str,
        lanes: int = LANES,
    ) -> None:
        self._pool = pool
        # Where every row goes and the ce_source it carries: this relay's KAFKA_TOPIC and CLOUDEVENTS_SOURCE
        # (CONTRACT §6), whatever defaults the row was written under (a psql caller gets migrate's).
        self._topic = topic
        self._source = source
        self._publisher = publisher
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._lease = lease
        self._lanes = lanes
        self._settler = Settler(pool, max_retries=max_retries, retry_base_delay=retry_base_delay)
        self.breakers = Breakers(publisher)
        self.wake = asyncio.Event()
        # One publish at a time, and the breakers' verdict on a failed one before the next: a batch
        # claimed meanwhile then keeps its fresh rows back instead of failing them too.
        self._turn = asyncio.Lock()
        self._attempts: dict[int, int] = {}  # attempts so far of the claimed rows that failed before
        self._admit = True  # outbox_new_rows may hold rows not admitted yet

    @property
    def broker_up(self) -> bool:
        return self.breakers.broker_up

    async def run(self, stop: asyncio.Event) -> None:
        outages = 0
        self._publisher.stopping = stop  # a publish waiting through a leader election stops waiting
        while not stop.is_set():
            try:
                self._admit = True  # woken by the poll: a notification may have been missed
                await self.drain(stop)
                outages = 0
                wait = await self._until_next_due()
            except db.DATABASE_GONE as exc:  # claimed rows come back after their lease
                outages += 1
                delay = random.uniform(0.5, 1.0) * min(5.0, 0.2 * 2**outages)
                log.warning("database unavailable (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay)
                await stopped_within(stop, delay)
                continue
            await first_set(self.wake, stop, within=wait)

    async def _until_next_due(self) -> float:
        """The poll interval, or less when a retry (or a breaker's look at the broker) is due sooner."""
        wait = min(self._poll_interval, self.breakers.next_check() or self._poll_interval)
        due = await self._pool.fetchval(NEXT_DUE)
        return wait if due is None else max(0.0, min(wait, float(due)))

    async def drain(self, stop: asyncio.Event) -> int:
        """Claims, publishes and settles until a claim comes back empty; returns how many rows were
        sent. A lane whose claim is full starts another (up to `lanes`): there is a backlog. A lane
        that fails stops the others claiming; they settle what they hold, then its error is raised."""
        halt = asyncio.Event()
        running: set[asyncio.Task[int]] = set()
        lanes: list[asyncio.Task[int]] = []

        def another() -> None:
            if len(running) < self._lanes and not (halt.is_set() or stop.is_set()):
                lane = asyncio.create_task(self._lane(stop, halt, another))
                running.add(lane)
                lane.add_done_callback(running.discard)
                lanes.append(lane)

        another()
        try:
            while running:
                await asyncio.wait(set(running))
        except BaseException:  # cancelled: the process is going down
            for lane in running:
                lane.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        errors = [lane.exception() for lane in lanes if lane.exception() is not None]
        if errors:
            raise errors[0]  # type: ignore[misc]
        return sum(lane.result() for lane in lanes)

    async def _lane(self, stop: asyncio.Event, halt: asyncio.Event, another: Callable[[], None]) -> int:
        sent = 0
        try:
            while not (stop.is_set() or halt.is_set()):
                await self.breakers.recheck()
                claim = await self._claim()
                if not claim.rows:
                    break
                if len(claim.rows) == self._batch_size:
                    another()
                sent += await self._publish_and_settle(claim)
        except BaseException:
            halt.set()
            raise
        return sent

    async def _claim(self) -> Claim:
        """Claims a batch, leased for RELAY_LEASE, and for one publish attempt more when another
        lane's publish is under way (this batch waits for it first); only due retries while the
        broker is down. New rows are admitted first when there may be some: a NOTIFY came, the
        poll woke us, or the claims since are full (a burst is admitted ADMIT_LIMIT rows at a time).
        Asking on every claim would scan the queue's dead entries (a burst's, until vacuum) every time."""
        admit = 0
        if self._admit or self.wake.is_set():
            self.wake.clear()
            admit = ADMIT_LIMIT
        lease = self._lease + (self._publisher.longest if self._turn.locked() else 0.0)
        deadline = time.monotonic() + lease
        records = await self._pool.fetch(CLAIM, self._batch_size, lease, not self.breakers.broker_up, admit)
        if admit:
            self._admit = len(records) == self._batch_size
        rows = [
            OutboxRow(
                r["id"], self._topic, r["key"], r["value"].encode(), headers_from_json(r["headers"], self._source)
            )
            for r in records
        ]
        retried = {r["id"]: r["attempts"] for r in records if r["attempts"] > 0}
        self._attempts.update(retried)
        if retried:
            fields = {"outbox_ids": list(retried), "retry": max(retried.values())}
            log.info("retrying publish", extra={"fields": fields})
        return Claim(rows, records[0]["claim_token"] if records else uuid.UUID(int=0), deadline)

    async def _publish_and_settle(self, claim: Claim) -> int:
        """Publishes the batch (but the fresh rows of partitions without a leader, which wait, and
        nothing at all once its lease leaves less than a publish may take), then settles it."""
        async with self._turn:
            rows, waiting = self.breakers.split(claim.rows, self._attempts)
            started, started_ns = time.perf_counter(), time.time_ns()
            outcome = await self._publisher.publish(rows, deadline=claim.deadline) if rows else []
            metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
            batch = published(rows, outcome, waiting)
            if batch.failed:
                await self.breakers.open_after(row for row, _ in batch.failed.values())
        tracing.record_sends(batch.sent, len(rows), started_ns)
        try:
            return await self._settler.settle(claim.token, batch, self._attempts)
        finally:
            for row in claim.rows:
                self._attempts.pop(row.id, None)
