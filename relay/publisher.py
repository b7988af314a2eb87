"""Publishing outbox rows with aiokafka: one batch at a time, per-row outcome, and a broker probe."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from genesis.settings import Settings

MAX_REQUEST_SIZE = 1024 * 1024  # aiokafka's default, stated because the relay checks it itself
MAX_BATCH_SIZE = 256 * 1024  # fewer produce requests per claimed batch


class OutboxRow(NamedTuple):
    id: int
    topic: str
    key: str
    value: bytes  # the event JSON, exactly as stored (no decode/encode round trip)
    headers: list[tuple[str, bytes]]


class HeldBackError(Exception):
    """Not sent: an earlier row of the same key failed in this batch, and order comes first."""


def headers_from_json(raw: str) -> list[tuple[str, bytes]]:
    return [(k, v.encode() if v else b"") for k, v in json.loads(raw).items()]


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
        self.longest = timeout + 1  # the most one publish() takes: the producer's own expiry, and a second more
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id="genesis-relay",
            acks="all",
            enable_idempotence=settings.kafka_enable_idempotence,
            linger_ms=2,
            max_batch_size=MAX_BATCH_SIZE,
            max_request_size=MAX_REQUEST_SIZE,
            # aiokafka expires a batch it could not deliver after this long; one attempt is bounded by it.
            request_timeout_ms=int(timeout * 1000),
            retry_backoff_ms=100,
        )
        # Where the acknowledged rows of the last publish() landed (id → partition, offset), and when it began.
        self.landed: dict[int, tuple[int, int]] = {}
        self.started_ns = 0

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()  # flushes what is buffered

    async def publish(self, rows: Sequence[OutboxRow]) -> list[BaseException | None]:
        """Sends the rows in order; returns each row's error (None when acknowledged).

        The rows are appended to one record batch per partition (more when one fills up) and each
        batch is sent as a whole: no future and no coroutine per message. A key maps to one
        partition, so its rows keep their order. A row the producer would refuse (too large) fails
        alone, and the later rows of its key are not sent at all (HeldBackError), so they can never
        reach Kafka ahead of it.
        """
        errors: list[BaseException | None] = [None] * len(rows)
        self.landed, self.started_ns = {}, time.time_ns()
        sending: list[tuple[asyncio.Future[object], list[int]]] = []
        try:
            async with asyncio.timeout(self.longest):
                await self._send(await self._chunks(rows, errors), errors, sending)
                results = await asyncio.gather(*(f for f, _ in sending), return_exceptions=True)
        except (TimeoutError, KafkaTimeoutError) as exc:  # the broker is gone while we were still queueing
            timed_out = exc if isinstance(exc, KafkaTimeoutError) else KafkaTimeoutError("publish timed out")
            queued: dict[int, asyncio.Future[object]] = {i: f for f, indexes in sending for i in indexes}
            for i in range(len(rows)):
                future = queued.get(i)
                if errors[i] is not None:
                    continue
                if future is not None and future.done() and not future.cancelled():
                    errors[i] = future.exception()  # settled before the deadline, either way
                else:
                    if future is not None:
                        future.cancel()
                    errors[i] = timed_out
            return errors
        for (_, indexes), result in zip(sending, results, strict=True):
            if isinstance(result, BaseException):
                for i in indexes:
                    errors[i] = result
            elif result is not None:  # the batch's RecordMetadata: its base offset, rows in append order
                meta: Any = result
                self.landed.update((rows[i].id, (meta.partition, meta.offset + n)) for n, i in enumerate(indexes))
        return errors

    async def _send(
        self,
        chunks: list[_Chunk],
        errors: list[BaseException | None],
        sending: list[tuple[asyncio.Future[object], list[int]]],
    ) -> None:
        """Hands the chunks to the producer, appending each one's future to `sending` as it goes."""
        refused: dict[tuple[str, int], BaseException] = {}  # partitions whose batch the producer refused
        for chunk in chunks:
            where = (chunk.topic, chunk.partition)
            if where not in refused:
                try:
                    future = await self._producer.send_batch(chunk.builder, chunk.topic, partition=chunk.partition)
                except KafkaTimeoutError:
                    raise  # the partition's queue never drained: the broker is gone
                except Exception as exc:
                    refused[where] = exc
                else:
                    sending.append((future, chunk.indexes))
                    continue
            # Nor are the partition's later batches sent: they may hold later rows of the same keys.
            for i in chunk.indexes:
                errors[i] = refused[where]

    async def _chunks(self, rows: Sequence[OutboxRow], errors: list[BaseException | None]) -> list[_Chunk]:
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
            if isinstance(known, BaseException):
                errors[i] = known
                failed_keys.add(row.key)
                continue
            # The default partitioner's choice for a key, so other producers of the topic agree.
            partition = known[_key_hash(key) % len(known)]
            chunk = open_chunks.get((row.topic, partition))
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
        return chunks

    async def probe(self) -> bool:
        """True when a broker answers a metadata request."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._producer.client.fetch_all_metadata()
        except Exception:
            return False
        return True
