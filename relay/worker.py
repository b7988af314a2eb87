"""The relay loop: wait for a NOTIFY, the poll interval or stop; then drain the outbox with SKIP LOCKED.

One batch is in flight at a time. A batch's failed rows are retried after base, 2×base, 4×base
seconds, then FAILED; while the broker does not answer, nothing more is claimed (circuit breaker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from typing import Any

import asyncpg

from genesis import db
from genesis.waits import first_set, stopped_within
from relay import metrics, tracing
from relay.publisher import OutboxRow, Publisher, headers_from_json

log = logging.getLogger("genesis.relay")

CLAIM = """
    SELECT id, topic, key, payload::text AS value, headers::text AS headers, claim_token
      FROM claim_outbox($1, make_interval(secs => $2))
"""

Failures = dict[int, tuple[OutboxRow, BaseException]]
Claim = tuple[list[OutboxRow], uuid.UUID | None]  # rows and their claim token


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
        self.broker_up = True  # the circuit breaker: False after a batch FAILED, until the broker answers

    async def run(self, stop: asyncio.Event) -> None:
        outages = 0
        while not stop.is_set():
            if not self.broker_up:
                await self._wait_for_broker(stop)
                continue
            self.wake.clear()
            try:
                await self.drain(stop)
                outages = 0
            except db.DATABASE_GONE as exc:  # claimed rows come back after their lease
                outages += 1
                delay = random.uniform(0.5, 1.0) * min(5.0, 0.2 * 2**outages)
                log.warning("database unavailable (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay)
                await stopped_within(stop, delay)
                continue
            await first_set(self.wake, stop, within=self._poll_interval)

    async def drain(self, stop: asyncio.Event) -> int:
        """Publishes batches until a claim comes back empty; returns how many rows were sent.

        Through a backlog (a full batch) it is pipelined: the next batch is claimed while this one
        is published, so PostgreSQL and the broker work at the same time. One batch is still in
        flight to the broker at a time: the next is published only once this one is settled, and is
        handed back untouched (never failed) when this one needs a retry, the relay stops or the
        circuit opens. Its claim skips the keys this batch holds, as another replica's claim would,
        so per-key order is kept. Below a full batch the next claim follows the settling, as it
        would find little ahead of it.
        """
        sent = 0
        rows, token = await self._claim()
        while rows:
            if stop.is_set() or not self.broker_up:
                await self._release(token, rows)
                break
            full = len(rows) == self._batch_size
            ahead = asyncio.create_task(self._claim(waiting=self._publisher.longest)) if full else None
            try:
                count, failed = await self._publish_once(rows, token)
                sent += count
                if failed:
                    # Retrying takes seconds: the batch claimed ahead goes back to whoever is free.
                    await self._hand_back(ahead)
                    ahead = None
                    sent += await self._retry(failed, token, stop)
            except BaseException:
                await self._hand_back(ahead)
                raise
            if ahead is not None:
                rows, token = await ahead
                if rows:
                    continue
                # Empty: the claim ahead skipped the keys this batch held, and a full batch may have
                # left later rows of them behind; claim again now that they are settled.
            rows, token = await self._claim() if self.broker_up and not stop.is_set() else ([], None)
        return sent

    async def _claim(self, waiting: float = 0.0) -> Claim:
        """Claims a batch, leased for RELAY_LEASE after `waiting`: a batch claimed ahead waits for the
        one in flight (at most one publish) before its own publish starts."""
        records = await self._pool.fetch(CLAIM, self._batch_size, self._lease + waiting)
        rows = [
            OutboxRow(r["id"], r["topic"], r["key"], r["value"].encode(), headers_from_json(r["headers"]))
            for r in records
        ]
        return rows, (records[0]["claim_token"] if records else None)

    async def _hand_back(self, ahead: asyncio.Task[Claim] | None) -> None:
        """Releases a batch claimed ahead and not published; if that fails, its lease runs out."""
        if ahead is None:
            return
        with contextlib.suppress(*db.DATABASE_GONE, asyncpg.PostgresError):
            rows, token = await ahead
            await self._release(token, rows)

    async def _publish_once(self, rows: list[OutboxRow], token: uuid.UUID | None) -> tuple[int, Failures]:
        """Publishes and settles what was acknowledged; returns that count and the rows that failed."""
        started = time.perf_counter()
        outcome = await self._publisher.publish(rows)
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
        sent, failed, held = _split(rows, outcome)
        total = await self._settle_sent(token, sent)
        # Rows behind a failed row of their session wait for it: released untouched.
        await self._release(token, held)
        return total, failed

    async def _retry(self, failed: Failures, token: Any, stop: asyncio.Event) -> int:
        """Publishes `failed` again after base, 2×base, 4×base…; what still fails is FAILED."""
        total = 0
        for attempt in range(1, self._max_retries + 1):
            error = _describe(next(iter(failed.values()))[1])
            delay = self._retry_base_delay * 2 ** (attempt - 1)
            # Counts the attempt and extends the lease over the wait, so nobody else takes the rows.
            await self._pool.fetchval(
                "SELECT record_outbox_attempt($1, $2, $3, make_interval(secs => $4))",
                token, list(failed), error, self._lease + delay,
            )  # fmt: skip
            metrics.RETRIED.inc(len(failed))
            log.warning(
                "publish failed; retry %d/%d in %.1fs", attempt, self._max_retries, delay,
                extra={"fields": {"outbox_ids": list(failed), "attempt": attempt, "retry_in": delay, "error": error}},
            )  # fmt: skip
            if await stopped_within(stop, delay):
                # Shutting down: hand the rows back for another replica rather than hold them.
                await self._release(token, [row for row, _ in failed.values()])
                return total
            rows = [row for row, _ in failed.values()]
            log.info("retrying publish", extra={"fields": {"outbox_ids": list(failed), "retry": attempt}})
            sent, failed, held = _split(rows, await self._publisher.publish(rows))
            total += await self._settle_sent(token, sent)
            await self._release(token, held)
            if not failed:
                return total
        error = _describe(next(iter(failed.values()))[1])
        count = await self._pool.fetchval("SELECT mark_outbox_failed($1, $2, $3)", token, list(failed), error)
        metrics.FAILED.inc(count)
        log.error(
            "outbox rows FAILED after %d retries", self._max_retries,
            extra={"fields": {"outbox_ids": list(failed), "rows": count, "error": error}},
        )  # fmt: skip
        # Circuit breaker: claim nothing more until the broker answers again.
        self.broker_up = await self._publisher.probe()
        return total

    async def _release(self, token: Any, rows: list[OutboxRow]) -> None:
        if rows:
            await self._pool.fetchval("SELECT release_outbox($1, $2)", token, [r.id for r in rows])

    async def _settle_sent(self, token: Any, rows: list[OutboxRow]) -> int:
        if not rows:
            return 0
        landed = self._publisher.landed
        tracing.record_sends(rows, landed, self._publisher.started_ns)
        where = [landed.get(r.id, (None, None)) for r in rows]
        count: int = await self._pool.fetchval(
            "SELECT mark_outbox_sent($1, $2, $3, $4)", token, [r.id for r in rows], [w[0] for w in where],
            [w[1] for w in where],
        )  # fmt: skip
        metrics.PUBLISHED.inc(count)
        if count < len(rows):
            # Another relay took these over after our lease ran out; it settles them, we do not.
            metrics.FENCED.inc(len(rows) - count)
            log.warning("claim lost on %d published row(s); left to their new holder", len(rows) - count)
        return count

    async def _wait_for_broker(self, stop: asyncio.Event) -> None:
        delay = min(1.0, self._retry_base_delay)
        while not stop.is_set():
            if await self._publisher.probe():
                log.info("broker answers again; draining the backlog")
                self.broker_up = True
                return
            if await stopped_within(stop, delay):
                return
            delay = min(delay * 2, 5.0)


def _split(
    rows: list[OutboxRow], outcome: list[BaseException | None]
) -> tuple[list[OutboxRow], Failures, list[OutboxRow]]:
    """Sent rows; failed rows (the first failure of each key); rows held behind a failure of their key."""
    sent: list[OutboxRow] = []
    failed: Failures = {}
    held: list[OutboxRow] = []
    blocked_keys: set[str] = set()
    for row, error in zip(rows, outcome, strict=True):
        if row.key in blocked_keys:
            held.append(row)
        elif error is not None:
            failed[row.id] = (row, error)
            blocked_keys.add(row.key)
        else:
            sent.append(row)
    return sent, failed, held


def _describe(error: BaseException) -> str:
    """'ErrorClass: message' (aiokafka's messages already start with their class name)."""
    name, text = type(error).__name__, str(error)
    return (text if text.startswith(name + ":") else f"{name}: {text}")[:2000]
