"""Publishing outbox rows with aiokafka: one batch at a time, per-row outcome, and a broker probe."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from genesis.settings import Settings


@dataclass(frozen=True)
class OutboxRow:
    id: int
    topic: str
    key: str
    value: bytes  # the event JSON, exactly as stored (no decode/encode round trip)
    headers: tuple[tuple[str, bytes], ...]


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
            # aiokafka expires a batch it could not deliver after this long; one attempt is bounded by it.
            request_timeout_ms=int(timeout * 1000),
            retry_backoff_ms=100,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()  # flushes what is buffered

    async def publish(self, rows: Sequence[OutboxRow]) -> list[BaseException | None]:
        """Sends the rows in order; returns each row's error (None when acknowledged)."""
        futures: list[asyncio.Future[object]] = []
        errors: list[BaseException | None] = []
        try:
            async with asyncio.timeout(self.timeout + 1):
                for row in rows:
                    futures.append(
                        await self._producer.send(row.topic, row.value, key=row.key.encode(), headers=list(row.headers))
                    )
                results = await asyncio.gather(*futures, return_exceptions=True)
        except Exception as exc:  # the broker is gone while we were still queueing
            results = [exc] * len(rows)
            for f in futures:
                f.cancel()
        for result in results:
            errors.append(result if isinstance(result, BaseException) else None)
        return errors

    async def probe(self) -> bool:
        """True when a broker answers a metadata request."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._producer.client.fetch_all_metadata()
        except Exception:
            return False
        return True
