"""The relay's Prometheus metrics (served on RELAY_METRICS_PORT and, for the outbox gauges, by the API)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from prometheus_client import Counter, Gauge, Histogram

PUBLISHED = Counter("genesis_relay_published_total", "Outbox rows published to Kafka and marked SENT")
RETRIED = Counter("genesis_relay_retried_total", "Publish attempts that failed and were retried")
FAILED = Counter("genesis_relay_failed_total", "Outbox rows marked FAILED after the last retry")
FENCED = Counter("genesis_relay_fenced_total", "Rows this relay published but could not settle (claim lost)")
# Seconds, from a fast local round trip to a publish that hits its timeout; the API's too.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
PUBLISH_SECONDS = Histogram(
    "genesis_relay_publish_seconds",
    "Time to publish one claimed batch (send to broker acknowledgement)",
    buckets=LATENCY_BUCKETS,
)
BROKER_UP = Gauge("genesis_relay_broker_up", "1 while the broker answers")
LISTENER_UP = Gauge("genesis_relay_listener_up", "1 while the LISTEN connection is open")


class OutboxGauge(NamedTuple):
    name: str
    column: str  # of outbox_stats()
    documentation: str
    on_relay: bool  # also kept by the relay (refreshed by its sweeper); the API reports every one at each scrape


# The outbox gauges, one table for both sources: the relay and the API's /metrics carry the same names and help,
# so one alert covers both.
OUTBOX_GAUGES: tuple[OutboxGauge, ...] = (
    OutboxGauge("genesis_outbox_backlog", "pending", "PENDING outbox rows", True),
    OutboxGauge(
        "genesis_outbox_blocked", "blocked", "PENDING rows held behind a FAILED or retrying row of their session", True
    ),
    OutboxGauge("genesis_outbox_blocked_sessions", "blocked_sessions", "Sessions whose publishing is held back", True),
    OutboxGauge("genesis_outbox_failed", "failed", "FAILED outbox rows waiting for an operator", True),
    OutboxGauge(
        "genesis_outbox_oldest_pending_age_seconds",
        "oldest_pending_age_seconds",
        "Age of the oldest PENDING outbox row",
        True,
    ),
    OutboxGauge("genesis_outbox_claimed", "claimed", "PENDING rows a relay holds a live claim on", False),
    OutboxGauge("genesis_outbox_retrying", "retrying", "PENDING rows with at least one failed publish attempt", False),
)
# outbox_stats() column → the relay's gauge, in the process-wide registry.
OUTBOX: dict[str, Gauge] = {g.column: Gauge(g.name, g.documentation) for g in OUTBOX_GAUGES if g.on_relay}


def record_stats(row: Mapping[str, float]) -> None:
    for column, gauge in OUTBOX.items():
        gauge.set(row[column])
