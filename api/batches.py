"""Group commit (CONTRACT §3, issue 21): commands that arrive together are recorded in one transaction.

A request's command joins a queue. A drainer holding a pool connection takes everything queued, up to CAP, as
one call of `submit_commands` (one statement, hence one transaction) and answers each request only once that
call has returned, that is after its commit. A drainer starts as soon as a command is queued and fewer than
the pool's size are running, and stops when it finds the queue empty: no timer and no linger, so at low load a
batch is one command and waits for nothing.

Isolation: the pool's READ COMMITTED. Every rule is read under the session's row lock (submit_commands locks
the batch's sessions first, in id order), and the duplicate guard is a unique index, so no snapshot anomaly
can slip a rule; REPEATABLE READ would only turn a lock wait on a session another batch just wrote into a
serialization failure of the whole batch.

Each command's answer is its own: a refusal (GSxxx) comes back as its row of the batch and fails only its
request. Anything else (a serialization failure or deadlock, an error for one odd payload, or a row with a
SQLSTATE that is not a refusal) is retried: the batch once more, then the commands one by one through
`submit_command` exactly as a single request ran before group commit, so one bad command never fails its
neighbours.
"""

from __future__ import annotations

import asyncio
import collections
import random
import uuid
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg
from opentelemetry import context as otel_context

from genesis import db, errors

# submit_commands' own cap: one savepoint per command, half of PostgreSQL's 64-entry subtransaction cache
# (sql/functions/submit_commands.sql says why).
CAP = 32
BATCH_ATTEMPTS = 2  # the batch, then the batch again; then one by one
BATCH = "SELECT * FROM submit_commands($1::jsonb) ORDER BY ordinal"
SINGLE = "SELECT * FROM submit_command($1, $2, $3, $4, $5, $6, $7, $8)"

Row: TypeAlias = "asyncpg.Record"
Conn: TypeAlias = "asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]"


@dataclass(slots=True, frozen=True)
class Command:
    session_id: uuid.UUID
    command_type: str
    payload: dict[str, Any]
    user_id: str
    idempotency_key: str | None
    request_id: str | None
    traceparent: str | None
    tracestate: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "session_id": str(self.session_id), "command_type": self.command_type, "payload": self.payload,
            "user_id": self.user_id, "idempotency_key": self.idempotency_key, "request_id": self.request_id,
            "traceparent": self.traceparent, "tracestate": self.tracestate,
        }  # fmt: skip

    def args(self) -> tuple[object, ...]:
        return (self.session_id, self.command_type, self.payload, self.user_id, self.idempotency_key,
                self.request_id, self.traceparent, self.tracestate)  # fmt: skip


@dataclass(slots=True, frozen=True)
class _Queued:
    command: Command
    future: asyncio.Future[Row]
    trace: otel_context.Context  # the request's: its SQL span's parent (or link, when it shares a batch)


class Batcher:
    """The queue of commands waiting for a transaction, and the drainers that record them."""

    def __init__(self, pool: asyncpg.Pool[Any], drainers: int) -> None:
        self._pool = pool
        self._max_drainers = max(1, drainers)
        self._drainers = 0
        self._queue: collections.deque[_Queued] = collections.deque()
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, command: Command) -> Row:
        """The row submit_command returns for `command`, after its transaction committed; its refusal raised."""
        future: asyncio.Future[Row] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(command, future, otel_context.get_current()))
        if self._drainers < self._max_drainers:
            self._drainers += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    def _take(self) -> list[_Queued]:
        batch: list[_Queued] = []
        while self._queue and len(batch) < CAP:
            queued = self._queue.popleft()
            if not queued.future.done():  # a request cancelled before its turn is not recorded
                batch.append(queued)
        return batch

    async def _drain(self) -> None:
        running = True
        try:
            async with self._pool.acquire() as conn:
                while self._queue:
                    batch = self._take()
                    if batch:
                        await self._record(conn, batch)
                # Before the release's await: a command queued from now on starts a drainer of its own.
                self._drainers -= 1
                running = False
        except Exception as exc:
            if running:
                self._drainers -= 1
                running = False
            if self._drainers == 0:  # nobody else will take them: they get this failure, as a single call would
                while self._queue:
                    _settle(self._queue.popleft().future, exc)
        finally:
            if running:  # cancelled (shutdown)
                self._drainers -= 1

    async def _record(self, conn: Conn, batch: list[_Queued]) -> None:
        try:
            rows = await self._batch(conn, batch)
            for queued, row in zip(batch, rows, strict=False):  # no rows: answered one by one
                if row["error_sqlstate"] is None:
                    _settle(queued.future, row)
                    continue
                refusal = errors.from_refusal(row["error_sqlstate"], row["error_message"], row["error_detail"])
                if refusal is not None:
                    _settle(queued.future, refusal)
                else:
                    await self._single(conn, queued)
        except Exception as exc:
            for queued in batch:
                _settle(queued.future, exc)
            raise
        finally:
            for queued in batch:  # a cancelled drainer (shutdown) leaves no request waiting forever
                _settle(queued.future, errors.Unavailable("The service is shutting down; try again"))

    async def _batch(self, conn: Conn, batch: list[_Queued]) -> list[Row]:
        """The batch's rows; after a failure of the whole batch, the batch again; then each command on its own
        (no rows: each request is answered already)."""
        commands = [queued.command.as_json() for queued in batch]
        # The batch's span: a child of its first request's, linked from the others' (OpenTelemetry's shape
        # for a batch), rather than of whichever request happened to start the drainer.
        traces = [queued.trace for queued in batch]
        for attempt in range(BATCH_ATTEMPTS):
            try:
                return await db.traced(BATCH, lambda: conn.fetch(BATCH, commands), traces)
            except db.DATABASE_GONE:
                raise
            except asyncpg.PostgresError:
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))  # full jitter, as db.retrying
        for queued in batch:
            await self._single(conn, queued)
        return []

    async def _single(self, conn: Conn, queued: _Queued) -> None:
        """One command in a transaction of its own: the path of a single request before group commit."""
        command, future = queued.command, queued.future
        attached = otel_context.attach(queued.trace)  # its span is its own request's, as before group commit
        try:
            row = await db.retrying(SINGLE, lambda: conn.fetchrow(SINGLE, *command.args()))
        except db.DATABASE_GONE:
            raise
        except Exception as exc:
            _settle(future, exc)
            return
        finally:
            otel_context.detach(attached)
        assert row is not None
        _settle(future, row)


def _settle(future: asyncio.Future[Row], outcome: Row | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
