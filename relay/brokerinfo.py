"""What the broker offers, asked once at start-up: whether the idempotent producer can be used.

KAFKA_ENABLE_IDEMPOTENCE=auto (the default; `None` in Settings) turns it on when the broker grants a
producer id. ApiVersions listing InitProducerId is not enough: Tansu 0.6 lists it and answers every
request with UNKNOWN_SERVER_ERROR, so the probe asks for a producer id for real (a throwaway one).

Order with idempotence on: the producer sends acks=all (the Publisher does, and aiokafka requires it),
and aiokafka keeps at most one produce request in flight per broker with the partition muted until it
settles, i.e. max.in.flight 1 per partition, within the Java client's limit of 5 for ordered
idempotent delivery. Its retries then carry the same sequence numbers: no duplicate, no reordering.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from aiokafka import AIOKafkaClient
from aiokafka import errors as kafka_errors
from aiokafka.protocol.admin import ApiVersionRequest
from aiokafka.protocol.transaction import InitProducerIdRequest

from genesis.settings import Settings
from genesis.waits import stopped_within

log = logging.getLogger("genesis.relay")

INIT_PRODUCER_ID = 22  # the ApiVersions key of InitProducerId
NO_TRANSACTION = 2**31 - 1  # the transaction timeout an idempotent, non-transactional producer sends


async def grants_producer_ids(bootstrap_servers: str, *, request_timeout: float) -> bool:
    """True when a broker lists InitProducerId and grants an id; raises when no broker answers or the
    answer stays a retriable error (e.g. COORDINATOR_LOAD_IN_PROGRESS just after start) — ask again."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(request_timeout * 1000))
    await client.bootstrap()
    try:
        node = client.get_random_node()
        versions = await client.send(node, ApiVersionRequest())
        if INIT_PRODUCER_ID not in {api_key for api_key, _, _ in versions.api_versions}:
            return False
        response = await client.send(node, InitProducerIdRequest(None, NO_TRANSACTION))
        error = kafka_errors.for_code(response.error_code)
        if error is kafka_errors.NoError:
            return True
        if error.retriable:
            raise error()
        return False
    finally:
        await client.close()


async def decide_idempotence(settings: Settings, stop: asyncio.Event) -> Settings | None:
    """`settings` with kafka_enable_idempotence decided (auto → what the broker offers), logged;
    waits for a broker that is not up yet; None when stopped first."""
    if settings.kafka_enable_idempotence is not None:
        _say(settings.kafka_enable_idempotence, "KAFKA_ENABLE_IDEMPOTENCE")
        return settings
    delay = 0.5
    while True:
        try:
            on = await grants_producer_ids(
                settings.kafka_bootstrap_servers, request_timeout=settings.relay_publish_timeout
            )
        except Exception as exc:
            log.warning(
                "broker not reachable to ask for idempotence (%s: %s); retrying in %.1fs",
                type(exc).__name__,
                exc,
                delay,
            )
            if await stopped_within(stop, delay):
                return None
            delay = min(delay * 2, 5.0)
            continue
        _say(on, "auto: the broker " + ("grants producer ids" if on else "grants no producer id"))
        return dataclasses.replace(settings, kafka_enable_idempotence=on)


def _say(on: bool, why: str) -> None:
    log.info(
        "idempotent producer %s (%s)", "on" if on else "off", why,
        extra={"fields": {"enable_idempotence": on}},
    )  # fmt: skip
