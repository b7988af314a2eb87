"""Publishing outbox rows with aiokafka: one batch at a time, per-row outcome, and a broker probe."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError

from genesis.settings import Settings


@dataclass(frozen=True)
class OutboxRow:
    id: int
    topic: str
    key: str
    value: bytes  # the event JSON, exactly as stored (no decode/encode round trip)
    headers: tuple[tuple[str, bytes], ...]


class HeldBackError(Exception):
    """Not sent: an earlier row of the same key failed in this batch, and order comes first."""


def headers_from_json(raw: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, (v or "").encode()) for k, v in json.loads(raw).items())


class Publisher:
    def __init__(self, settings: Settings, *, timeout: float) -> None:
        self.timeout = timeout
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id="genesis-relay",
            acks="all",
            enable_idempotence=settings.kafka_enable_idempotence,
            linger_ms=2,
            max_batch_size=256 * 1024,  # fewer produce requests per claimed batch
            # aiokafka expires a batch it could not deliver after this long; one attempt is bounded by it.
            request_timeout_ms=int(timeout * 1000),
            retry_backoff_ms=100,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()  # flushes what is buffered

    async def publish(self, rows: Sequence[OutboxRow]) -> list[BaseException | None]:
        """Sends the rows in order; returns each row's error (None when acknowledged).

        A row the producer refuses outright (too large, …) fails alone, and the later rows of its
        key are not sent at all (HeldBackError), so they can never reach Kafka ahead of it.
        """
        errors: list[BaseException | None] = [None] * len(rows)
        futures: dict[int, asyncio.Future[object]] = {}
        failed_keys: set[str] = set()
        try:
            async with asyncio.timeout(self.timeout + 1):
                for i, row in enumerate(rows):
                    if row.key in failed_keys:
                        errors[i] = HeldBackError(f"behind a failed row of key {row.key}")
                        continue
                    try:
                        futures[i] = await self._producer.send(
                            row.topic, row.value, key=row.key.encode(), headers=list(row.headers)
                        )
                    except KafkaTimeoutError:
                        raise  # no metadata: the broker is gone, the whole batch fails
                    except Exception as exc:
                        errors[i] = exc
                        failed_keys.add(row.key)
                results = await asyncio.gather(*futures.values(), return_exceptions=True)
        except (TimeoutError, KafkaTimeoutError) as exc:  # the broker is gone while we were still queueing
            timed_out = exc if isinstance(exc, KafkaTimeoutError) else KafkaTimeoutError("publish timed out")
            for i in range(len(rows)):
                future = futures.get(i)
                if errors[i] is not None:
                    continue
                if future is not None and future.done() and not future.cancelled():
                    errors[i] = future.exception()  # settled before the deadline, either way
                else:
                    if future is not None:
                        future.cancel()
                    errors[i] = timed_out
            return errors
        for i, result in zip(futures, results, strict=True):
            if isinstance(result, BaseException):
                errors[i] = result
        return errors

    async def probe(self) -> bool:
        """True when a broker answers a metadata request."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._producer.client.fetch_all_metadata()
        except Exception:
            return False
        return True
