"""The batch span processor of genesis.telemetry.tracing: BatchSpanProcessor's schedule, holding each finished span as
its OTLP bytes instead of the SDK's span objects.

Why: a BatchSpanProcessor keeps every finished span (a ReadableSpan, its attributes, events, links: ~20
objects the garbage collector tracks) until its batch goes, ~0.25 s under load. Kept that long they outlive
the young generations, so the collector walks them again and again, and full collections come ~4× as often:
`make bench-api` counted ~40 µs a command of the API's main thread in the collector with tracing on, ~10 off
(docs/benchmarks.md). Encoded as it ends (~8 µs, genesis.telemetry.otlp_encoding), a span leaves only bytes, which the
collector never walks; the export thread then only joins them and posts, and holds the GIL for little.

The settings are the SDK's: OTEL_BSP_SCHEDULE_DELAY (ms, 5000), OTEL_BSP_MAX_QUEUE_SIZE (2048, the oldest
dropped beyond it) and OTEL_BSP_MAX_EXPORT_BATCH_SIZE (512): a batch goes when that many spans wait, or at
the delay; shutdown (the provider's, at exit too) and force_flush send what waits.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Mapping

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from genesis.telemetry.otlp_encoding import Encoded, assemble, encoded
from genesis.telemetry.otlp_export import OtlpHttpSpanExporter

log = logging.getLogger(__name__)


def _setting(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        log.warning("%s=%r is not an integer; using %d", name, raw, default)
        return default
    return value if value > 0 else default


class EncodedBatchProcessor(SpanProcessor):
    def __init__(self, exporter: OtlpHttpSpanExporter, env: Mapping[str, str] | None = None) -> None:
        e = os.environ if env is None else env
        self.exporter = exporter  # posts the serialized requests
        self.delay = _setting(e, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self.batch = _setting(e, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
        self.capacity = max(self.batch, _setting(e, "OTEL_BSP_MAX_QUEUE_SIZE", 2048))
        self._queue: collections.deque[Encoded] = collections.deque(maxlen=self.capacity)
        self.dropped = 0
        self._wake = threading.Event()
        self._stopped = False
        self._sending = threading.Lock()  # one export at a time: the worker's, a flush's
        self._worker = threading.Thread(target=self._work, name="OtlpSpanExport", daemon=True)
        self._worker.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if self._stopped or context is None or not context.trace_flags.sampled:
            return
        try:
            item = encoded(span)
        except Exception:  # a value no encoder takes: that span is lost, not the request
            log.exception("Failed to encode span %s", span.name)
            return
        if len(self._queue) == self.capacity:
            self.dropped += 1  # the deque drops the oldest
        self._queue.append(item)
        if len(self._queue) >= self.batch and not self._wake.is_set():
            self._wake.set()

    def _work(self) -> None:
        while not self._stopped:
            full = self._wake.wait(self.delay)
            self._wake.clear()
            self._export(everything=not full)  # woken by a full batch: full batches only, the rest waits
        self._export()

    def _export(self, *, everything: bool = True) -> None:
        with self._sending:
            if self.dropped:
                log.warning("Span queue full: %d spans dropped", self.dropped)
                self.dropped = 0
            while len(self._queue) >= (1 if everything else self.batch):
                taken = [self._queue.popleft() for _ in range(min(self.batch, len(self._queue)))]
                try:
                    self.exporter.send(assemble(taken))
                except Exception:  # the worker must live on: the next batch may go
                    log.exception("Failed to export %d spans", len(taken))

    def shutdown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        self._worker.join(30)
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self._stopped:
            return False
        self._export()
        return True
