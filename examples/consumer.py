"""A Genesis event consumer that is safe under at-least-once delivery.

The relay publishes every event at least once: a relay that dies after Kafka acknowledged a batch
but before it marked the rows SENT publishes them again, and a consumer that dies before
committing its offsets reads them again. So a consumer dedupes on the `event_id` header:

- a bounded in-memory LRU of recent ids skips the common case (a redelivered batch) cheaply;
- the id is recorded in the *same transaction* as the side effect (here: a SQLite projection of
  each session's stage and version), so "done" and "remembered as done" cannot disagree. A set
  kept beside the side effect is not enough: a crash between the two either loses the effect or
  repeats it. A real consumer does the same in its own database (a `processed_events` table
  with `event_id` as primary key, inserted in the transaction that applies the effect).

It reads with the agents' consumer helper (`agents.consumer`, docs/agents.md): a consumer group whose
offsets are committed only after an event's effect is.

Events of one session arrive in order (key = session id, one partition per key), each carrying
`aggregate_version` 1, 2, 3…; a jump means an event is missing upstream and is logged.

Run it against `docker compose up` (broker on localhost:29092):
    python examples/consumer.py --bootstrap localhost:29092 --db /tmp/genesis-consumer.sqlite3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sqlite3
from collections.abc import Iterable
from typing import Any, Literal

from agents.consumer import ANY_EVENT, Agent, Event, RecentIds

__all__ = ["Consumer", "Projection", "RecentIds", "consume"]

log = logging.getLogger("genesis.example.consumer")

Outcome = Literal["applied", "duplicate", "gap"]


class Projection:
    """The consumer's side effect and its memory of processed ids, written in one transaction."""

    def __init__(self, path: str = ":memory:") -> None:
        self.db = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT below
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS processed_events (event_id TEXT PRIMARY KEY);
            CREATE TABLE IF NOT EXISTS sessions (
                session_id TEXT PRIMARY KEY, stage TEXT, version INTEGER NOT NULL, last_event_type TEXT);
            """
        )

    def apply(self, event_id: str, event: dict[str, Any]) -> Outcome:
        """Applies one event exactly once, however often it is delivered."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            outcome = self._apply(event_id, event)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return outcome

    def _apply(self, event_id: str, event: dict[str, Any]) -> Outcome:
        inserted = self.db.execute("INSERT OR IGNORE INTO processed_events VALUES (?)", (event_id,)).rowcount
        if not inserted:
            return "duplicate"
        session_id, version = str(event["aggregate_id"]), int(event["aggregate_version"])
        row = self.db.execute("SELECT version FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
        previous = row[0] if row else 0
        if version > previous:
            payload = event.get("payload") or {}
            stage = payload.get("next_stage") or payload.get("stage")
            self.db.execute(
                """INSERT INTO sessions (session_id, stage, version, last_event_type) VALUES (?, ?, ?, ?)
                   ON CONFLICT (session_id) DO UPDATE
                   SET stage = coalesce(excluded.stage, sessions.stage), version = excluded.version,
                       last_event_type = excluded.last_event_type""",
                (session_id, stage, version, event["event_type"]),
            )
        # Anything but the next version means an event is missing (e.g. an outbox row was discarded).
        return "applied" if version == previous + 1 else "gap"

    def close(self) -> None:
        self.db.close()

    def session(self, session_id: str) -> tuple[str | None, int] | None:
        row = self.db.execute("SELECT stage, version FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
        return None if row is None else (row[0], row[1])


class Consumer:
    """What to do with one Kafka record: dedupe on its `event_id` header, then apply it."""

    def __init__(self, projection: Projection, recent: RecentIds | None = None) -> None:
        self.projection = projection
        self.recent = recent or RecentIds()
        self.counts: dict[str, int] = {"applied": 0, "duplicate": 0, "gap": 0}

    def handle(self, headers: Iterable[tuple[str, bytes]], value: bytes) -> Outcome:
        return self.apply(Event.from_record(list(headers), value, partition=-1, offset=-1))

    def apply(self, record: Event) -> Outcome:
        event, event_id = record.value, record.event_id
        if event_id in self.recent:
            outcome: Outcome = "duplicate"
        else:
            outcome = self.projection.apply(event_id, event)
            self.recent.add(event_id)
        self.counts[outcome] += 1
        if outcome == "gap":
            log.warning("aggregate_version gap in session %s at %s", event["aggregate_id"], event["aggregate_version"])
        log.info("%s %s %s", outcome, record.event_type, event_id)
        return outcome


async def consume(bootstrap: str, topic: str, group: str, consumer: Consumer, stop: asyncio.Event) -> None:
    """Reads until `stop` with the agents' consumer helper (agents.consumer): a consumer group, offsets
    committed only after each event's effect is committed, SIGTERM finishing the event at hand."""
    agent = Agent(bootstrap=bootstrap, topic=topic, group=group, dedupe=False)  # the Consumer dedupes itself

    @agent.handler(ANY_EVENT)
    async def apply(event: Event) -> None:
        consumer.apply(event)

    await agent.run(stop)


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    consumer = Consumer(Projection(args.db), RecentIds(args.remember))
    try:
        await consume(args.bootstrap, args.topic, args.group, consumer, stop)
    finally:
        consumer.projection.close()
    log.info("stopped: %s", consumer.counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="localhost:29092")
    parser.add_argument("--topic", default="domain-events")
    parser.add_argument("--group", default="genesis-example-consumer")
    parser.add_argument("--db", default=":memory:", help="SQLite file for the projection (default: in memory)")
    parser.add_argument("--remember", type=int, default=10_000, help="event ids kept in the in-memory LRU")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
