"""Live events for SSE streams: one LISTEN connection per process, shared by every open stream.

NOTIFY on `genesis_events_v1` carries the ids of the sessions that have new events, space-separated
(one id from a single `submit_command`; a batch of commands, submit_commands, sends one NOTIFY listing its
sessions). The hub then reads each such session's new events once, from the table, and hands them to
each subscriber's bounded queue. A subscriber that falls too far behind is told to end its stream (the client
resumes with Last-Event-ID).

NOTIFY on `genesis_task_progress_v1` carries a session id and a command id: an agent reported
progress (CONTRACT §5, §9). The hub reads the task's latest progress and sends it to that session's
streams as `event: task-progress` without an `id`: it is not an event of the session, not replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import asyncpg

from api.frame_queue import FrameQueue
from genesis import db, errors
from genesis.waits import first_set, stopped_within

log = logging.getLogger("genesis.api.live")

EVENTS_CHANNEL = "genesis_events_v1"
PROGRESS_CHANNEL = "genesis_task_progress_v1"
PAGE = 500
RETRY_BASE = 0.05  # seconds before the first retry of a failed read; doubling up to RETRY_MAX
RETRY_MAX = 2.0
LIVE_ONLY = -1  # the sequence of a frame that has no id (task progress): sent as it comes, never replayed
PROGRESS_SEEN = 10_000  # tasks whose last progress sent is remembered, so a folded wake-up does not repeat it

TASK_PROGRESS = """
    SELECT t.progress, t.progress_message, t.updated_at FROM async_tasks t
     WHERE t.command_id = $1 AND t.status = 'RUNNING'
"""

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


def progress_frame(command_id: str, progress: int, message: str) -> Frame:
    data = json.dumps({"command_id": command_id, "progress": progress, "message": message}, separators=(",", ":"))
    return Frame(LIVE_ONLY, f"event: task-progress\ndata: {data}\n\n".encode())


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
        self._progress_pending: dict[str, str] = {}  # command id → session id, reported since the last read
        self._progress_wake = asyncio.Event()
        self._progress_seen: OrderedDict[str, object] = OrderedDict()  # command id → updated_at last sent

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

    def notified(self, channel: str, payload: str) -> None:
        if channel == PROGRESS_CHANNEL:
            self._progress_notified(payload)
            return
        for session_id in payload.split():
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

    # --- task progress (CONTRACT §5): live only ---------------------------------------------------

    def _progress_notified(self, payload: str) -> None:
        session_id, _, command_id = payload.partition(" ")
        if session_id in self._subscribers and command_id:
            self._progress_pending[command_id] = session_id
            self._progress_wake.set()

    async def run_progress(self, stop: asyncio.Event) -> None:
        """Sends each reported progress to the session's open streams; a read that fails loses only that
        report (progress is not replayed, and the next report or the result event supersedes it)."""
        while not stop.is_set():
            await first_set(self._progress_wake, stop)
            self._progress_wake.clear()
            pending, self._progress_pending = self._progress_pending, {}
            for command_id, session_id in pending.items():
                try:
                    await self._deliver_progress(session_id, command_id)
                except (asyncpg.PostgresError, *db.DATABASE_GONE) as exc:
                    log.warning("could not read the progress of task %s: %s", command_id, exc)

    async def _deliver_progress(self, session_id: str, command_id: str) -> None:
        if session_id not in self._subscribers:
            return
        row = await self._pool.fetchrow(TASK_PROGRESS, command_id)
        if row is None:  # settled meanwhile: its result event says the rest
            self._progress_seen.pop(command_id, None)
            return
        if self._progress_seen.get(command_id) == row["updated_at"]:
            return  # two reports folded into one read: this one is already out
        self._progress_seen[command_id] = row["updated_at"]
        self._progress_seen.move_to_end(command_id)
        while len(self._progress_seen) > PROGRESS_SEEN:
            self._progress_seen.popitem(last=False)
        message = progress_frame(command_id, row["progress"], row["progress_message"])
        for subscription in list(self._subscribers.get(session_id, ())):
            self._offer(subscription, message)
