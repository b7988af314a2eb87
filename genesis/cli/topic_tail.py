"""`genesis topic tail`: a line per record of KAFKA_TOPIC, for developers and operators.

It reads without a consumer group (it commits nothing and moves no one's offsets), from the end of
each partition or, with --from-beginning, from its start; SIGINT (Ctrl-C) or SIGTERM ends it cleanly.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from opentelemetry import propagate, trace

from genesis.settings import Settings

METADATA_TRIES = 50  # × 0.1 s for the topic's partitions to be known


def describe(partition: int, offset: int, key: bytes | None, headers: list[tuple[str, bytes]]) -> str:
    h = {k: v.decode(errors="replace") for k, v in headers}
    context = trace.get_current_span(propagate.extract(h)).get_span_context()
    trace_id = trace.format_trace_id(context.trace_id) if context.is_valid else "-"
    return (
        f"partition={partition} offset={offset} key={(key or b'').decode(errors='replace')} "
        f"event_type={h.get('event_type', '-')} ce_id={h.get('ce_id', '-')} trace_id={trace_id}"
    )


async def tail(
    settings: Settings, *, session: str | None, from_beginning: bool, out: Callable[[str], None] = print
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        client_id="genesis-topic-tail",
    )
    await consumer.start()
    try:
        assignment = await _partitions(consumer, settings.kafka_topic)
        consumer.assign(assignment)
        if from_beginning:
            await consumer.seek_to_beginning(*assignment)
        else:
            await consumer.seek_to_end(*assignment)
        print(f"tailing {settings.kafka_topic} ({len(assignment)} partitions); Ctrl-C stops", file=sys.stderr)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            for tp, messages in sorted(batches.items(), key=lambda item: item[0].partition):
                for m in messages:
                    if session is None or (m.key or b"").decode(errors="replace") == session:
                        out(describe(tp.partition, m.offset, m.key, list(m.headers)))
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    for _ in range(METADATA_TRIES):
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return [TopicPartition(topic, p) for p in sorted(partitions)]
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no partitions (does it exist?)")
