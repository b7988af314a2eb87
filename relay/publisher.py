"""Publishing outbox rows with aiokafka: one batch at a time, per-row outcome (where it landed, or why not),
partitions without a leader, and a broker probe."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, RecordListTooLargeError
from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition

from genesis.settings import RELAY_HANDOVER_SLACK, Settings

log = logging.getLogger("genesis.relay")

MAX_REQUEST_SIZE = 1024 * 1024  # aiokafka's default, stated because the relay checks it itself
MAX_BATCH_SIZE = 256 * 1024  # fewer produce requests per claimed batch


class OutboxRow(NamedTuple):
    id: int
    topic: str
    key: str
    value: bytes  # the event JSON, exactly as stored (no decode/encode round trip)
    headers: list[tuple[str, bytes]]


class Landing(NamedTuple):
    """Where the broker acknowledged a row: its partition and offset."""

    partition: int
    offset: int | None


Outcome = Landing | BaseException


class HeldBackError(Exception):
    """Not sent: an earlier row of the same key failed in this batch, and order comes first."""


class HandedBackError(HeldBackError):
    """Never handed to the producer: the claim's lease had less left than a publish may take (its
    patience), or the relay is stopping. The rows go back untouched; no attempt is counted."""


class RefusedBatchError(HeldBackError):
    """The broker refused the record batch this row was in as too large as a whole (its
    `message.max.bytes`): not this row's failure. The row goes out again in a batch of its own, so
    only a row the broker refuses by itself fails (and holds back its session)."""


_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)
ALONE_LIMIT = 10_000  # rows remembered to go out in batches of their own


def headers_from_json(raw: str, source: str) -> list[tuple[str, bytes]]:
    """The stored headers, with `ce_source` the publishing relay's CLOUDEVENTS_SOURCE."""
    headers = json.loads(raw) | {"ce_source": source}
    return [(k, v.encode() if v else b"") for k, v in headers.items()]


@functools.lru_cache(maxsize=16384)
def _key_hash(key: bytes) -> int:
    """The Java client's partitioning hash (murmur2, pure Python in aiokafka), kept per session key."""
    return int(murmur2(key)) & 0x7FFFFFFF


class _Chunk(NamedTuple):
    """Rows of one partition appended to one record batch, in order."""

    topic: str
    partition: int
    builder: Any  # aiokafka BatchBuilder
    indexes: list[int]


class Publisher:
    def __init__(self, settings: Settings, *, timeout: float) -> None:
        self.timeout = timeout
        self.longest = timeout + 1  # one publish attempt: the producer's own expiry, and a second more
        # How long a publish keeps waiting while the cluster answers and still names a leader for
        # each partition it waits on: a leader election (a dead leader is named until the controller
        # fences it, broker.session.timeout.ms, 9 s by default) outlasts RELAY_PUBLISH_TIMEOUT. Given
        # up, the batch is published again by a new producer (relay/idempotent.py) the broker cannot
        # dedupe against: duplicates. A batch is handed to the producer only while its lease leaves
        # this much (publish); half the lease, so that a batch claimed while another publish waits
        # out an election still fits after it (Settings.require_relay_lease: at least one attempt).
        self.patience = max(self.longest, (settings.relay_lease - RELAY_HANDOVER_SLACK) / 2)
        self.stopping: asyncio.Event | None = None  # set by the relay at SIGTERM: no more patience
        # Leaders are asked over connections of their own: a broker answers a connection's requests
        # in order, so a metadata request behind a produce waiting for acks=all (the dead node still
        # in the ISR) waits as long, and the producer's own client seems down during an election.
        self._watch = AIOKafkaClient(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id="genesis-relay-watch",
            request_timeout_ms=1000,
        )
        self._watch_started = False
        self._partitions: dict[str, list[int]] = {}  # topic → its partitions, as the last publish saw them
        self._alone: set[int] = set()  # rows whose record batch the broker refused as too large
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id="genesis-relay",
            acks="all",
            enable_idempotence=settings.kafka_enable_idempotence,
            linger_ms=0,  # the relay hands over whole record batches: lingering only delayed every publish
            max_batch_size=MAX_BATCH_SIZE,
            max_request_size=MAX_REQUEST_SIZE,
            # aiokafka expires a batch it could not deliver after this long; one attempt is bounded by it.
            request_timeout_ms=int(timeout * 1000),
            retry_backoff_ms=100,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        try:
            await self._producer.stop()  # flushes what is buffered
        finally:
            if self._watch_started:
                await self._watch.close()

    def partition_of(self, row: OutboxRow) -> int | None:
        """The partition the row's key maps to, as the last publish to its topic saw the topic (None:
        not known yet). Not from the producer's metadata: a producer renewed after a failed publish
        (relay/idempotent.py) knows no topic yet, and the partition breaker would never open."""
        known = self._partitions.get(row.topic)
        return known[_key_hash(row.key.encode()) % len(known)] if known else None

    async def leaderless(self, topic: str, partitions: set[int]) -> set[int]:
        """Which of `partitions` have no leader, by fresh metadata (none known when no metadata comes)."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._producer.client.force_metadata_update()
        except Exception:
            return set()  # no answer at all is the broker-wide breaker's to judge, not a partition's
        cluster = self._producer.client.cluster
        return {p for p in partitions if cluster.leader_for_partition(TopicPartition(topic, p)) in (None, -1)}

    async def publish(self, rows: Sequence[OutboxRow], deadline: float | None = None) -> list[Outcome]:
        """Sends the rows in order; returns each row's outcome: where it landed, or its error. One
        publish at a time (the relay's turn, relay/worker.py): a partition's record batches go out
        in turn (below), and an idempotent producer is renewed between publishes (relay/idempotent.py).
        `deadline` (time.monotonic()): when the rows' claim runs out. They are handed to the producer
        only while it leaves a whole publish (`patience`), checked last before they are: every row
        is HandedBackError otherwise, or once the relay stops.

        The rows are appended to one record batch per partition (more when one fills up). The
        partitions are sent at once, but a partition's batches one after another, each only once
        the one before it is acknowledged: a later batch could otherwise be acknowledged while an
        earlier one of the same partition, carrying earlier rows of the same keys, expires after
        retriable errors (a leader election), and a session's later event would be on Kafka
        before its earlier one. When a batch fails, the partition's later batches are not sent
        (HeldBackError). The cost is small: a claimed batch rarely fills more than one record
        batch per partition (MAX_BATCH_SIZE). A row the producer would refuse (too large) fails
        alone, and the later rows of its key are held back the same way.
        """
        outcomes: list[Outcome | None] = [None] * len(rows)
        per_partition: dict[tuple[str, int], list[_Chunk]] = {}
        for chunk in await self._chunks(rows, outcomes):
            per_partition.setdefault((chunk.topic, chunk.partition), []).append(chunk)
        refusal = self._refusal(deadline)
        if refusal is not None:
            return [refusal] * len(rows)
        sending = asyncio.ensure_future(
            asyncio.gather(*(self._send_in_turn(chunks, rows, outcomes) for chunks in per_partition.values()))
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.longest
        while not sending.done():
            await asyncio.wait({sending}, timeout=max(0.0, deadline - loop.time()))
            if sending.done():
                break
            waiting = {(c.topic, c.partition) for c in self._unsettled(per_partition, outcomes)}
            if (
                loop.time() - started < self.patience
                and not (self.stopping is not None and self.stopping.is_set())
                and await self._electing(waiting)
            ):
                deadline = min(loop.time() + 1.0, started + self.patience)
                continue
            # The broker is gone (or a partition has no leader) while we were still sending: what is
            # unsettled failed.
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending
        timed_out = KafkaTimeoutError("publish timed out")
        return [timed_out if outcome is None else outcome for outcome in outcomes]

    def _refusal(self, deadline: float | None) -> HandedBackError | None:
        """Why the rows may not be handed over now, if they may not: nothing can fence a publish
        once it is under way (docs/operations.md), so it must end before the claim does."""
        if self.stopping is not None and self.stopping.is_set():
            return HandedBackError("the relay is stopping")
        if deadline is not None and deadline - time.monotonic() < self.patience:
            left = deadline - time.monotonic()
            log.warning(
                "claim handed back unpublished: its lease has %.1fs left, a publish may take %.1fs", left, self.patience
            )
            return HandedBackError(f"lease has {left:.1f}s left, less than a publish may take ({self.patience:.1f}s)")
        return None

    @staticmethod
    def _unsettled(per_partition: dict[tuple[str, int], list[_Chunk]], outcomes: list[Outcome | None]) -> list[_Chunk]:
        return [c for chunks in per_partition.values() for c in chunks if any(outcomes[i] is None for i in c.indexes)]

    async def _electing(self, partitions: set[tuple[str, int]]) -> bool:
        """True while the cluster answers metadata and names a leader for each of `partitions`: a
        leader that stopped answering is being replaced, and the producer's own retries (same
        producer id and sequence numbers, so the broker dedupes them) will land the batch then."""
        try:
            # Short: a healthy cluster answers in milliseconds, and an outage must not stretch a publish.
            async with asyncio.timeout(min(self.timeout, 1.0)):
                if not self._watch_started:
                    await self._watch.bootstrap()
                    self._watch_started = True
                cluster = await self._watch.fetch_all_metadata()
        except Exception:
            return False
        return all(cluster.leader_for_partition(TopicPartition(t, p)) not in (None, -1) for t, p in partitions)

    async def _send_in_turn(
        self, chunks: list[_Chunk], rows: Sequence[OutboxRow], outcomes: list[Outcome | None]
    ) -> None:
        """Sends one partition's record batches, each after the one before it is acknowledged."""
        for n, chunk in enumerate(chunks):
            try:
                future = await self._producer.send_batch(chunk.builder, chunk.topic, partition=chunk.partition)
                landed = await future
            except Exception as exc:
                if isinstance(exc, _TOO_LARGE) and len(chunk.indexes) > 1:
                    # Which of its rows the broker refuses is for batches of one to tell, next time. Bounded:
                    # a row another relay took meanwhile never comes back to clear its mark (a lost mark
                    # only costs that row's batch one more refusal, with no attempt counted).
                    if len(self._alone) > ALONE_LIMIT:
                        self._alone.clear()
                    self._alone.update(rows[i].id for i in chunk.indexes)
                    exc = RefusedBatchError(f"record batch of partition {chunk.partition} refused as too large: {exc}")
                for i in chunk.indexes:
                    outcomes[i] = exc
                held = HeldBackError(f"behind a failed record batch of partition {chunk.partition}")
                for later in chunks[n + 1 :]:
                    for i in later.indexes:
                        outcomes[i] = held
                return
            base = int(getattr(landed, "offset", -1))
            for j, i in enumerate(chunk.indexes):
                # A record batch's records take consecutive offsets from the one acknowledged.
                outcomes[i] = Landing(chunk.partition, base + j if base >= 0 else None)

    async def _chunks(self, rows: Sequence[OutboxRow], errors: list[Outcome | None]) -> list[_Chunk]:
        """The rows as record batches per partition, in order; refused rows get their error instead."""
        partitions: dict[str, list[int] | BaseException] = {}
        open_chunks: dict[tuple[str, int], _Chunk] = {}
        chunks: list[_Chunk] = []
        failed_keys: set[str] = set()
        for i, row in enumerate(rows):
            if row.key in failed_keys:
                errors[i] = HeldBackError(f"behind a failed row of key {row.key}")
                continue
            key = row.key.encode()
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, row.value, row.headers)
            if size > MAX_REQUEST_SIZE:
                errors[i] = MessageSizeTooLargeError(
                    f"The message is {size} bytes when serialized, more than the {MAX_REQUEST_SIZE} allowed"
                )
                failed_keys.add(row.key)
                continue
            known = partitions.get(row.topic)
            if known is None:
                try:
                    known = sorted(await self._producer.partitions_for(row.topic))
                except Exception as exc:  # no metadata for the topic (unknown, or no broker): its rows fail
                    known = exc
                partitions[row.topic] = known
                if not isinstance(known, BaseException):
                    self._partitions[row.topic] = known
            if isinstance(known, BaseException):
                errors[i] = known
                failed_keys.add(row.key)
                continue
            # The default partitioner's choice for a key, so other producers of the topic agree.
            partition = known[_key_hash(key) % len(known)]
            chunk = open_chunks.get((row.topic, partition))
            alone = row.id in self._alone
            if alone:
                self._alone.discard(row.id)
                chunk = None  # a batch of its own (closed below)
            if (
                chunk is None
                or chunk.builder.append(timestamp=None, key=key, value=row.value, headers=row.headers) is None
            ):
                # Full (or none yet): this partition's next rows go to a new batch, sent after it.
                chunk = open_chunks[(row.topic, partition)] = _Chunk(
                    row.topic, partition, self._producer.create_batch(), []
                )
                chunks.append(chunk)
                # An empty batch takes any message (its size was checked above).
                chunk.builder.append(timestamp=None, key=key, value=row.value, headers=row.headers)
            chunk.indexes.append(i)
            if alone:
                del open_chunks[(row.topic, partition)]
        return chunks

    async def probe(self) -> bool:
        """True when a broker answers a metadata request."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._producer.client.fetch_all_metadata()
        except Exception:
            return False
        return True
