"""The idempotent producer after a failed publish: a fresh producer (a new producer id) every time.

An idempotent producer numbers each partition's batches. aiokafka takes the numbers when a batch
leaves its queue, and it never expires such a batch itself: it retries it until it succeeds. When a
publish gives up on a batch (RELAY_PUBLISH_TIMEOUT) or the broker refuses one, the relay publishes
those rows again as a new batch with the next numbers, and the broker, still missing the earlier
ones, answers OutOfOrderSequenceNumber to every later batch of the partition, for good (seen after
a broker restart: 1,358 rows FAILED that way). The Java client resets its sequence state in this
case; aiokafka does not, so the relay drops that producer, with whatever it was still retrying
(those rows count as failed and are published again), and starts a new one before the next publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from genesis.settings import Settings
from relay.publisher import HeldBackError, OutboxRow, Publisher, RefusedBatchError

log = logging.getLogger("genesis.relay")


def publisher_for(settings: Settings, *, timeout: float) -> Publisher:
    """The relay's publisher; renews its producer after failures when it is idempotent."""
    if settings.kafka_enable_idempotence:
        return RenewingPublisher(settings, timeout=timeout)
    return Publisher(settings, timeout=timeout)


class RenewingPublisher(Publisher):
    def __init__(self, settings: Settings, *, timeout: float) -> None:
        super().__init__(settings, timeout=timeout)
        self._settings = settings
        self._renewed_unstarted = False  # a renewal whose start failed: start before using it
        # A lane's probe (the breakers' look) and another's publish may both find it unstarted: one start.
        self._starting = asyncio.Lock()

    async def publish(self, rows: Sequence[OutboxRow], deadline: float | None = None) -> Any:
        if not await self._started():
            return [ConnectionError("no producer: the broker does not answer")] * len(rows)
        outcomes = await super().publish(rows, deadline)
        # A held-back row never reached the producer; any other error (a refused batch too) may have left a gap.
        if any(
            isinstance(o, RefusedBatchError) or (isinstance(o, BaseException) and not isinstance(o, HeldBackError))
            for o in outcomes
        ):
            await self._renew()
        return outcomes

    async def probe(self) -> bool:
        return await self._started() and await super().probe()

    async def _started(self) -> bool:
        async with self._starting:
            if self._renewed_unstarted:
                try:
                    await self._producer.start()
                except Exception:
                    return False
                self._renewed_unstarted = False
            return True

    async def _renew(self) -> None:
        old, self._producer = self._producer, Publisher(self._settings, timeout=self.timeout)._producer
        # Dropped, not flushed: a flush would wait on the very batches it retries for ever.
        with contextlib.suppress(Exception):
            old._closed = True
            if old._sender is not None:
                await old._sender.close()
            await old.client.close()
        self._renewed_unstarted = True
        if not await self._started():  # the broker is away: the next publish or probe tries again
            log.warning("new idempotent producer not started yet: the broker does not answer")
            return
        log.info("idempotent producer renewed after a failed publish (a new producer id)")
