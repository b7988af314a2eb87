"""The relay's Prometheus metrics (served on RELAY_METRICS_PORT and, for the outbox gauges, by the API)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PUBLISHED = Counter("genesis_relay_published_total", "Outbox rows published to Kafka and marked SENT")
RETRIED = Counter("genesis_relay_retried_total", "Publish attempts that failed and were retried")
FAILED = Counter("genesis_relay_failed_total", "Outbox rows marked FAILED after the last retry")
FENCED = Counter("genesis_relay_fenced_total", "Rows this relay published but could not settle (claim lost)")
PUBLISH_SECONDS = Histogram(
    "genesis_relay_publish_seconds",
    "Time to publish one claimed batch (send to broker acknowledgement)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BACKLOG = Gauge("genesis_outbox_backlog", "PENDING outbox rows")
BLOCKED = Gauge("genesis_outbox_blocked", "PENDING rows held behind a FAILED or retrying row of their session")
BLOCKED_SESSIONS = Gauge("genesis_outbox_blocked_sessions", "Sessions whose publishing is held back")
FAILED_ROWS = Gauge("genesis_outbox_failed", "FAILED outbox rows waiting for an operator")
OLDEST_PENDING = Gauge("genesis_outbox_oldest_pending_age_seconds", "Age of the oldest PENDING outbox row")
BROKER_UP = Gauge("genesis_relay_broker_up", "1 while the broker answers")
LISTENER_UP = Gauge("genesis_relay_listener_up", "1 while the LISTEN connection is open")


def record_stats(row: dict[str, float]) -> None:
    BACKLOG.set(row["pending"])
    BLOCKED.set(row["blocked"])
    BLOCKED_SESSIONS.set(row["blocked_sessions"])
    FAILED_ROWS.set(row["failed"])
    OLDEST_PENDING.set(row["oldest_pending_age_seconds"])
