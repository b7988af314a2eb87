"""The relay loop: wait for a NOTIFY, the poll interval, the next due retry or stop; then drain the outbox.

Retries are data, not sleeps: a failed publish is recorded by record_outbox_attempt, which schedules
the row's next attempt (base × 2ⁿ⁻¹) or FAILs it, and the relay goes straight on with other work.
Claims take due retries first, so any free replica makes the retry; the row's key stays held by its
schedule meanwhile. Two circuit breakers: while the broker does not answer at all, only due retries
(the batch in flight's) are claimed; while a partition has no leader, its fresh rows are handed
back untouched (PENDING) and other partitions flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from typing import Any, NamedTuple

import asyncpg

from genesis import db
from genesis.waits import first_set, stopped_within
from relay import metrics, tracing
from relay.publisher import HeldBackError, Landing, OutboxRow, Outcome, Publisher, headers_from_json

log = logging.getLogger("genesis.relay")

CLAIM = """
    SELECT id, topic, key, payload::text AS value, headers::text AS headers, attempts, claim_token
      FROM claim_outbox($1, make_interval(secs => $2), $3, $4, $5, $6, 0)
"""
ADMIT = "SELECT outbox_admit_new($1)"
ADMIT_LIMIT = 5000  # rows admitted per claim at most: a burst is admitted over a few claims
NEXT_DUE = "SELECT extract(epoch FROM min(due_at) - now()) FROM outbox_heads WHERE retry AND NOT blocked"
PARTITION_RECHECK = 1.0  # seconds between metadata checks of a partition without a leader

Claim = tuple[list[OutboxRow], uuid.UUID | None]  # rows and their claim token
Failures = dict[int, tuple[OutboxRow, BaseException]]


class Published(NamedTuple):
    """A batch after its publish: what was sent (and where), failed, held back or left waiting."""

    rows: list[OutboxRow]  # the rows handed to the publisher
    sent: list[tuple[OutboxRow, Landing]]
    failed: Failures
    held: list[OutboxRow]
    waiting: list[OutboxRow]  # fresh rows of partitions without a leader, never handed over
    started_ns: int  # when the publish began (the start of its rows' PRODUCER spans)

    @property
    def clean(self) -> bool:
        return not (self.failed or self.held or self.waiting)


class ClaimLostError(Exception):
    """A settle of the claim changed fewer rows than it holds: another relay or an operator has them."""


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
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._max_retries = max_retries
        self._retry_base_delay = retry_base_delay
        self._lease = lease
        self.wake = asyncio.Event()
        self.broker_up = True  # the broker-wide breaker: False after a failed publish, until the broker answers
        self._attempts: dict[int, int] = {}  # attempts so far of the claimed rows that failed before
        self._leaderless: dict[tuple[str, int], float] = {}  # partition → when to look at its leader again
        self._more_new = True  # outbox_new_rows may hold rows not admitted yet

    async def run(self, stop: asyncio.Event) -> None:
        outages = 0
        self._publisher.stopping = stop  # a publish waiting through a leader election stops waiting
        while not stop.is_set():
            self.wake.clear()
            try:
                if not self.broker_up:
                    self.broker_up = await self._publisher.probe()
                    if self.broker_up:
                        log.info("broker answers again; draining the backlog")
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
        """The poll interval, or less when a retry (or a broker check) is due sooner."""
        wait = self._poll_interval if self.broker_up else min(self._poll_interval, 1.0)
        if self._leaderless:
            wait = min(wait, PARTITION_RECHECK)
        due = await self._pool.fetchval(NEXT_DUE)
        return wait if due is None else max(0.0, min(wait, float(due)))

    async def drain(self, stop: asyncio.Event) -> int:
        """Publishes batches until a claim comes back empty; returns how many rows were sent.

        Through a backlog (a full batch) it is pipelined: the next batch is claimed while this one
        is published, so PostgreSQL and the broker work at the same time. That claim may continue
        the keys this batch holds after its rows (so one long session is pipelined too; it shares
        this batch's token, so such a key stays held by one token up to its last row); it is
        published only once every row of this one is acknowledged, and handed back untouched when
        anything of this one failed, was lost, or the relay stops. A batch all acknowledged is
        settled while the next one is published (its rows are on Kafka already, ahead of the next
        one's, so order holds however the settle ends); the next is settled only after it.
        """
        sent = 0
        settling: asyncio.Task[int] | None = None
        rows, token = await self._claim()
        try:
            while rows:
                if stop.is_set():
                    await self._release(token, rows)
                    break
                full = len(rows) == self._batch_size
                ahead = asyncio.create_task(self._claim(self._publisher.longest, token, rows)) if full else None
                try:
                    published = await self._publish(rows)
                    if settling is not None:
                        sent += await settling
                        settling = None
                    if ahead is not None and published.clean:
                        settling = asyncio.create_task(self._settle(token, published))
                    else:
                        count = await self._settle(token, published)
                        sent += count
                        if count < len(rows) or not published.clean:
                            await self._hand_back(ahead)
                            ahead = None
                except BaseException:
                    await self._hand_back(ahead)
                    raise
                if ahead is not None:
                    rows, token = await ahead
                    if rows:
                        continue
                if settling is not None:
                    # Settled first: the claim ahead skips the keys that settle has locked, and
                    # holds the keys it continues until it is settled itself.
                    sent += await settling
                    settling = None
                rows, token = await self._claim() if not stop.is_set() else ([], None)
        finally:
            if settling is not None:
                sent += await settling
        return sent

    async def _claim(
        self, waiting: float = 0.0, behind: uuid.UUID | None = None, held: list[OutboxRow] | None = None
    ) -> Claim:
        """Claims a batch, leased for RELAY_LEASE after `waiting` (a batch claimed ahead waits for
        the one in flight, at most one publish). Only due retries while the broker is down."""
        # New rows' sessions get their heads in a statement of their own, committed before the claim
        # (admitted inside a claim they would stay invisible to other replicas until it commits), and
        # only when there may be some: a NOTIFY came, or the last admission was a full one. Asking on
        # every claim would scan the queue's dead entries (a burst's, until vacuum) every time.
        if self.wake.is_set() or self._more_new or behind is None:
            self.wake.clear()
            self._more_new = await self._pool.fetchval(ADMIT, ADMIT_LIMIT) >= ADMIT_LIMIT
        last: dict[str, int] = {}
        for row in held or ():
            last[row.key] = row.id
        records = await self._pool.fetch(
            CLAIM, self._batch_size, self._lease + waiting, not self.broker_up, behind, list(last), list(last.values())
        )
        rows = [
            OutboxRow(r["id"], r["topic"], r["key"], r["value"].encode(), headers_from_json(r["headers"]))
            for r in records
        ]
        retried = {r["id"]: r["attempts"] for r in records if r["attempts"] > 0}
        self._attempts.update(retried)
        if retried:
            fields = {"outbox_ids": list(retried), "retry": max(retried.values())}
            log.info("retrying publish", extra={"fields": fields})
        return rows, (records[0]["claim_token"] if records else None)

    async def _hand_back(self, ahead: asyncio.Task[Claim] | None) -> None:
        """Releases a batch claimed ahead and not published; if that fails, its lease runs out."""
        if ahead is None:
            return
        with contextlib.suppress(*db.DATABASE_GONE, asyncpg.PostgresError):
            rows, token = await ahead
            await self._release(token, rows)

    async def _publish(self, rows: list[OutboxRow]) -> Published:
        """Publishes the batch (but the fresh rows of partitions without a leader, which wait)."""
        rows, waiting = await self._without_leaderless(rows)
        started, started_ns = time.perf_counter(), time.time_ns()
        outcome = await self._publisher.publish(rows) if rows else []
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
        sent, failed, held = _split(rows, outcome)
        tracing.record_sends(sent, len(rows), started_ns)
        return Published(rows, sent, failed, held, waiting, started_ns)

    async def _settle(self, token: uuid.UUID | None, published: Published) -> int:
        """Settles a published batch; returns how many rows were SENT (0 when the claim was lost)."""
        rows, failed = published.rows + published.waiting, published.failed
        try:
            total = await self._settle_sent(token, published.sent)
            if failed:
                await self._record_failures(token, failed)
            # Rows behind a failed row of their session wait for it: released untouched.
            await self._release(token, published.held)
            await self._release(token, published.waiting, delay=PARTITION_RECHECK)
        except ClaimLostError as lost:
            # Fencing: the claim is gone, so nothing of it is published or settled by us again.
            metrics.FENCED.inc(len(rows))
            log.warning("claim lost (%s); its rows are dropped, left to their new holder", lost)
            return 0
        finally:
            for row in rows:
                self._attempts.pop(row.id, None)
        if failed:
            await self._open_breakers(failed)
        return total

    async def _without_leaderless(self, rows: list[OutboxRow]) -> tuple[list[OutboxRow], list[OutboxRow]]:
        """The rows to publish, and the fresh rows of partitions without a leader, which wait.
        Retries go out regardless: their schedule is the batch in flight's, and ends FAILED."""
        if not self._leaderless:
            return rows, []
        now = time.monotonic()
        due = {where for where, at in self._leaderless.items() if at <= now}
        if due and not await self._publisher.probe():
            return rows, []  # no metadata at all: publishing decides (the broker-wide breaker)
        for topic in {t for t, _ in due}:
            still = await self._publisher.leaderless(topic, {p for t, p in due if t == topic})
            for where in [w for w in due if w[0] == topic]:
                if where[1] in still:
                    self._leaderless[where] = now + PARTITION_RECHECK
                else:
                    log.info("partition %s-%d has a leader again", *where)
                    del self._leaderless[where]
        publish: list[OutboxRow] = []
        waiting: list[OutboxRow] = []
        for row in rows:
            held = (row.topic, self._publisher.partition_of(row)) in self._leaderless
            (waiting if held and row.id not in self._attempts else publish).append(row)
        return publish, waiting

    async def _open_breakers(self, failed: Failures) -> None:
        """After a failed publish: the broker-wide breaker if the broker does not answer, else the
        partition breaker of each failed row's partition that has no leader."""
        if not await self._publisher.probe():
            self.broker_up = False
            log.warning("broker does not answer; claiming only due retries until it does")
            return
        partitions: dict[str, set[int]] = {}
        for row, _ in failed.values():
            partition = self._publisher.partition_of(row)
            if partition is not None:
                partitions.setdefault(row.topic, set()).add(partition)
        for topic, candidates in partitions.items():
            for partition in await self._publisher.leaderless(topic, candidates):
                log.warning("partition %s-%d has no leader; its rows wait", topic, partition)
                self._leaderless[(topic, partition)] = time.monotonic() + PARTITION_RECHECK

    async def _record_failures(self, token: uuid.UUID | None, failed: Failures) -> None:
        """Schedules each failed row's next attempt, or FAILs it (record_outbox_attempt), by error."""
        by_error: dict[str, list[int]] = {}
        for row_id, (_, exc) in failed.items():
            by_error.setdefault(_describe(exc), []).append(row_id)
        for error, ids in by_error.items():
            record = await self._pool.fetchrow(
                "SELECT * FROM record_outbox_attempt($1, $2, $3, make_interval(secs => $4), $5)",
                token, ids, error, self._retry_base_delay, self._max_retries,
            )  # fmt: skip
            assert record is not None
            if record["tried"] < len(ids):
                raise ClaimLostError(f"{len(ids) - record['tried']} of {len(ids)} failed row(s) not ours any more")
            attempt = max(self._attempts.get(i, 0) for i in ids) + 1
            if record["failed"]:
                metrics.FAILED.inc(record["failed"])
                log.error(
                    "outbox rows FAILED after %d retries", self._max_retries,
                    extra={"fields": {"outbox_ids": ids, "rows": record["failed"], "error": error}},
                )  # fmt: skip
            if record["tried"] > record["failed"]:
                delay = self._retry_base_delay * 2 ** (attempt - 1)
                metrics.RETRIED.inc(record["tried"] - record["failed"])
                log.warning(
                    "publish failed; retry %d/%d in %.1fs", attempt, self._max_retries, delay,
                    extra={"fields": {"outbox_ids": ids, "attempt": attempt, "retry_in": delay, "error": error}},
                )  # fmt: skip

    async def _release(self, token: Any, rows: list[OutboxRow], delay: float | None = None) -> None:
        if not rows:
            return
        count = await self._pool.fetchval(
            "SELECT release_outbox($1, $2, make_interval(secs => $3))", token, [r.id for r in rows], delay
        )
        if count < len(rows):
            raise ClaimLostError(f"{len(rows) - count} of {len(rows)} released row(s) not ours any more")

    async def _settle_sent(self, token: Any, rows: list[tuple[OutboxRow, Landing]]) -> int:
        if not rows:
            return 0
        count: int = await self._pool.fetchval(
            "SELECT mark_outbox_sent($1, $2, $3, $4)",
            token, [r.id for r, _ in rows], [at.partition for _, at in rows], [at.offset for _, at in rows],
        )  # fmt: skip
        metrics.PUBLISHED.inc(count)
        if count < len(rows):
            # Another relay took these over after our lease ran out; it settles them, we do not.
            raise ClaimLostError(f"{len(rows) - count} of {len(rows)} published row(s) not ours any more")
        return count


def _split(
    rows: list[OutboxRow], outcome: list[Outcome]
) -> tuple[list[tuple[OutboxRow, Landing]], Failures, list[OutboxRow]]:
    """Sent rows and where they landed; failed rows (the first failure of each key); rows held
    behind a failure of their key (or of their partition's earlier record batch)."""
    sent: list[tuple[OutboxRow, Landing]] = []
    failed: Failures = {}
    held: list[OutboxRow] = []
    blocked_keys: set[str] = set()
    for row, result in zip(rows, outcome, strict=True):
        if row.key in blocked_keys:
            held.append(row)
        elif isinstance(result, HeldBackError):
            held.append(row)  # never sent: not an attempt of its own
            blocked_keys.add(row.key)
        elif isinstance(result, BaseException):
            failed[row.id] = (row, result)
            blocked_keys.add(row.key)
        else:
            sent.append((row, result))
    return sent, failed, held


def _describe(error: BaseException) -> str:
    """'ErrorClass: message' (aiokafka's messages already start with their class name)."""
    name, text = type(error).__name__, str(error)
    return (text if text.startswith(name + ":") else f"{name}: {text}")[:2000]
