"""Live events for SSE streams: one LISTEN connection per process, shared by every open stream.

NOTIFY on `genesis_events_v1` carries only a session id. The hub then reads that session's new
events once, from the table, and hands them to each subscriber's bounded queue. A subscriber that
falls too far behind is told to end its stream (the client resumes with Last-Event-ID).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import asyncpg

from api.frame_queue import FrameQueue
from genesis import db, errors
from genesis.waits import first_set, stopped_within

log = logging.getLogger("genesis.api.live")

EVENTS_CHANNEL = "genesis_events_v1"
PAGE = 500
RETRY_BASE = 0.05  # seconds before the first retry of a failed read; doubling up to RETRY_MAX
RETRY_MAX = 2.0

NEW_EVENTS = """
    SELECT genesis_event_json(e) FROM domain_events e
     WHERE e.aggregate_id = $1 AND e.id > $2 ORDER BY e.id LIMIT $3
"""


class Frame(NamedTuple):
    sequence: int
    data: bytes  # the SSE message, encoded once however many streams it goes to


def frame(event: dict[str, Any]) -> Frame:
    data = json.dumps(event, separators=(",", ":"))
    return Frame(event["sequence"], f"id: {event['sequence']}\nevent: {event['event_type']}\ndata: {data}\n\n".encode())


class Subscription:
    def __init__(self, session_id: str, buffer: int, transport: asyncio.BaseTransport | None) -> None:
        self.session_id = session_id
        self.queue: FrameQueue[Frame] = FrameQueue(buffer)
        self.overflowed = False
        self.transport = transport
        self.task = asyncio.current_task()  # the stream's handler
        self.ended = False

    def end(self) -> None:
        """Ends the stream from outside (its client left, or the hub stopped) by cancelling its handler once."""
        if not self.ended and self.task is not None:
            self.ended = True
            self.task.cancel()


class EventHub:
    def __init__(self, pool: asyncpg.Pool[Any], *, buffer: int = 256) -> None:
        self._pool = pool
        self._buffer = buffer
        self._subscribers: dict[str, set[Subscription]] = {}
        self._cursor: dict[str, int] = {}  # the newest sequence handed out, per session
        self._locks: dict[str, asyncio.Lock] = {}
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self.closed = False

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    @contextlib.asynccontextmanager
    async def subscribe(self, session_id: str, transport: asyncio.BaseTransport | None) -> AsyncIterator[Subscription]:
        """Registers before the caller replays history, so nothing committed from then on is missed;
        unregisters however the caller ends, a registration whose first read failed included."""
        if self.closed:
            raise errors.Unavailable("Live events are unavailable; try again")
        subscription = Subscription(session_id, self._buffer, transport)
        self._subscribers.setdefault(session_id, set()).add(subscription)
        try:
            lock = self._locks.setdefault(session_id, asyncio.Lock())
            async with lock:
                if session_id not in self._cursor:
                    newest = await self._pool.fetchval(
                        "SELECT coalesce(max(id), 0) FROM domain_events WHERE aggregate_id = $1", session_id
                    )
                    self._cursor[session_id] = int(newest)
            yield subscription
        finally:
            self._unsubscribe(subscription)

    def close(self) -> None:
        """The hub can deliver no more: ends every open stream (its client resumes elsewhere), refuses new ones."""
        self.closed = True
        for group in list(self._subscribers.values()):
            for subscription in list(group):
                subscription.end()

    def _unsubscribe(self, subscription: Subscription) -> None:
        group = self._subscribers.get(subscription.session_id)
        if group is None:
            return
        group.discard(subscription)
        if not group:
            del self._subscribers[subscription.session_id]
            self._cursor.pop(subscription.session_id, None)
            self._locks.pop(subscription.session_id, None)

    def notified(self, _channel: str, session_id: str) -> None:
        if session_id in self._subscribers:
            self._pending.add(session_id)
            self._wake.set()

    def reconnected(self) -> None:
        """After the LISTEN connection comes back, catch every open stream up from the table."""
        self._pending.update(self._subscribers)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0  # rounds in a row with a failed read
        while not stop.is_set():
            await first_set(self._wake, stop)
            self._wake.clear()
            pending, self._pending = self._pending, set()
            failed = False
            for session_id in pending:
                try:
                    await self._deliver(session_id)
                except (asyncpg.PostgresError, *db.DATABASE_GONE) as exc:
                    log.warning("could not read new events of %s: %s", session_id, exc)
                    self._pending.add(session_id)
                    failed = True
            failures = failures + 1 if failed else 0
            if failed:
                # No later notification may come for this session, so the hub wakes itself to read again,
                # backing off (with jitter) while the database keeps failing.
                delay = min(RETRY_MAX, RETRY_BASE * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
                asyncio.get_running_loop().call_later(delay, self._wake.set)

    async def reap(self, stop: asyncio.Event, interval: float = 0.25) -> None:
        """One watcher for every open stream: when a client goes away its stream ends at once,
        without each idle stream waking up to look."""
        while not await stopped_within(stop, interval):
            for group in list(self._subscribers.values()):
                for subscription in list(group):
                    transport = subscription.transport
                    if transport is None or transport.is_closing():
                        subscription.end()

    async def _deliver(self, session_id: str) -> None:
        lock = self._locks.get(session_id)
        if lock is None:
            return
        async with lock:
            while session_id in self._cursor:
                rows = await self._pool.fetch(NEW_EVENTS, session_id, self._cursor[session_id], PAGE)
                for (event,) in rows:
                    message = frame(event)
                    self._cursor[session_id] = message.sequence
                    for subscription in list(self._subscribers.get(session_id, ())):
                        self._offer(subscription, message)
                if len(rows) < PAGE:
                    return

    @staticmethod
    def _offer(subscription: Subscription, message: Frame) -> None:
        if subscription.overflowed:
            return
        try:
            subscription.queue.put_nowait(message)
        except asyncio.QueueFull:
            subscription.overflowed = True
