"""Settling a published batch: what the broker acknowledged becomes SENT (with where it landed), a
failed row gets its next attempt scheduled (or is FAILED), and what was never sent (held behind a
failure of its session, or never handed to the producer) goes back untouched.

Each step is fenced by the claim's token. A step that changes fewer rows than it names has lost
them to another relay or an operator: the other steps are taken all the same (another session's
failed row still gets its retry scheduled, the rows still held are still handed back), the loss is
counted and logged, and nothing of the claim is published again from memory. A lost claim is
never an error here: the relay drops it and goes on."""

from __future__ import annotations

import logging
import uuid
from typing import Any, NamedTuple

import asyncpg

from relay import metrics
from relay.breakers import PARTITION_RECHECK
from relay.publisher import HeldBackError, Landing, OutboxRow, Outcome

log = logging.getLogger("genesis.relay")

Failures = dict[int, tuple[OutboxRow, BaseException]]


class Published(NamedTuple):
    """A batch after its publish: what was sent (and where), failed, held back or left waiting."""

    rows: list[OutboxRow]  # the rows handed to the publisher
    sent: list[tuple[OutboxRow, Landing]]
    failed: Failures
    held: list[OutboxRow]  # not sent and not an attempt: behind a failure of their key, or never handed over
    waiting: list[OutboxRow]  # fresh rows of partitions without a leader, never handed over


def published(rows: list[OutboxRow], outcome: list[Outcome], waiting: list[OutboxRow]) -> Published:
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
    return Published(rows, sent, failed, held, waiting)


class Settler:
    def __init__(self, pool: asyncpg.Pool[Any], *, max_retries: int, retry_base_delay: float) -> None:
        self._pool = pool
        self._max_retries = max_retries
        self._retry_base_delay = retry_base_delay

    async def settle(self, token: uuid.UUID, batch: Published, attempts: dict[int, int]) -> int:
        """Settles a published batch, every step whatever the others found; returns how many rows
        are SENT. `attempts`: how often the claimed rows that failed before were tried."""
        count = await self._mark_sent(token, batch.sent)
        lost = len(batch.sent) - count
        if lost:
            metrics.FENCED.inc(lost)  # on Kafka, and settled by whoever holds them now
        lost += await self._record_failures(token, batch.failed, attempts)
        # Rows behind a failed row of their session wait for it: released untouched.
        lost += len(batch.held) - await self.release(token, batch.held)
        lost += len(batch.waiting) - await self.release(token, batch.waiting, delay=PARTITION_RECHECK)
        if lost:
            total = len(batch.rows) + len(batch.waiting)
            log.warning(
                "claim lost (%d of %d row(s) not ours any more); dropped, left to their new holder", lost, total,
                extra={"fields": {"claim_token": str(token), "published_unsettled": len(batch.sent) - count}},
            )  # fmt: skip
        return count

    async def release(self, token: uuid.UUID, rows: list[OutboxRow], delay: float | None = None) -> int:
        """Hands rows back untouched (due again after `delay`); returns how many were still ours."""
        if not rows:
            return 0
        count: int = await self._pool.fetchval(
            "SELECT release_outbox($1, $2, make_interval(secs => $3))", token, [r.id for r in rows], delay
        )
        return count

    async def _mark_sent(self, token: uuid.UUID, rows: list[tuple[OutboxRow, Landing]]) -> int:
        if not rows:
            return 0
        count: int = await self._pool.fetchval(
            "SELECT mark_outbox_sent($1, $2, $3, $4, $5)",
            token, [r.id for r, _ in rows], [at.partition for _, at in rows], [at.offset for _, at in rows],
            rows[0][0].topic,  # one relay, one topic
        )  # fmt: skip
        metrics.PUBLISHED.inc(count)
        return count

    async def _record_failures(self, token: uuid.UUID, failed: Failures, attempts: dict[int, int]) -> int:
        """Schedules each failed row's next attempt, or FAILs it (record_outbox_attempt), by error;
        returns how many of them were not ours any more."""
        by_error: dict[str, list[int]] = {}
        for row_id, (_, exc) in failed.items():
            by_error.setdefault(_describe(exc), []).append(row_id)
        lost = 0
        for error, ids in by_error.items():
            record = await self._pool.fetchrow(
                "SELECT * FROM record_outbox_attempt($1, $2, $3, make_interval(secs => $4), $5)",
                token, ids, error, self._retry_base_delay, self._max_retries,
            )  # fmt: skip
            assert record is not None
            lost += len(ids) - record["tried"]
            attempt = max(attempts.get(i, 0) for i in ids) + 1
            if record["failed"]:
                metrics.FAILED.inc(record["failed"])
                log.error(
                    "outbox rows FAILED after %d retries", self._max_retries,
                    extra={"fields": {"outbox_ids": ids, "rows": record["failed"], "error": error,
                                      **_ids(failed, ids)}},
                )  # fmt: skip
            if record["tried"] > record["failed"]:
                delay = self._retry_base_delay * 2 ** (attempt - 1)
                metrics.RETRIED.inc(record["tried"] - record["failed"])
                log.warning(
                    "publish failed; retry %d/%d in %.1fs", attempt, self._max_retries, delay,
                    extra={"fields": {"outbox_ids": ids, "attempt": attempt, "retry_in": delay, "error": error,
                                      **_ids(failed, ids)}},
                )  # fmt: skip
        return lost


def _ids(failed: Failures, ids: list[int]) -> dict[str, list[str]]:
    """The rows' event ids and their commands' correlation ids, from the stored headers: what a log search
    for one command (CONTRACT §7) finds."""
    headers = [dict(failed[i][0].headers) for i in ids]
    return {
        "event_ids": [h.get("event_id", b"").decode() for h in headers],
        "correlation_ids": sorted({h.get("correlation_id", b"").decode() for h in headers}),
    }


def _describe(error: BaseException) -> str:
    """'ErrorClass: message' (aiokafka's messages already start with their class name)."""
    name, text = type(error).__name__, str(error)
    return (text if text.startswith(name + ":") else f"{name}: {text}")[:2000]
