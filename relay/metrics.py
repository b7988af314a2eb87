"""The relay's Prometheus metrics (served on RELAY_METRICS_PORT and, for the outbox gauges, by the API)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from genesis.telemetry.metric_names import LATENCY_BUCKETS, OUTBOX_GAUGES

PUBLISHED = Counter("genesis_relay_published_total", "Outbox rows published to Kafka and marked SENT")
RETRIED = Counter("genesis_relay_retried_total", "Publish attempts that failed and were retried")
FAILED = Counter("genesis_relay_failed_total", "Outbox rows marked FAILED after the last retry")
FENCED = Counter("genesis_relay_fenced_total", "Rows this relay published but could not settle (claim lost)")
PUBLISH_SECONDS = Histogram(
    "genesis_relay_publish_seconds",
    "Time to publish one claimed batch (send to broker acknowledgement)",
    buckets=LATENCY_BUCKETS,
)
BROKER_UP = Gauge("genesis_relay_broker_up", "1 while the broker answers")
LISTENER_UP = Gauge("genesis_relay_listener_up", "1 while the LISTEN connection is open")


# outbox_gauges() column → the relay's gauge, in the process-wide registry.
OUTBOX: dict[str, Gauge] = {g.column: Gauge(g.name, g.documentation) for g in OUTBOX_GAUGES if g.on_relay}


def record_stats(row: Mapping[str, float]) -> None:
    for column, gauge in OUTBOX.items():
        gauge.set(row[column])


def without_listener() -> None:
    """A poll-only relay (RELAY_LISTEN=false) has no listener, so it exports no genesis_relay_listener_up: a 0
    would read as a listener down (deploy/prometheus/alerts.yml)."""
    with contextlib.suppress(KeyError):  # already gone
        REGISTRY.unregister(LISTENER_UP)
