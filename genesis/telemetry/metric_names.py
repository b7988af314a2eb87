"""Metric names and buckets that the relay's and the API's /metrics share, so that one alert covers both."""

from __future__ import annotations

from typing import NamedTuple

# Seconds, from a fast local round trip to a publish that hits its timeout: the relay's publish, the API's requests.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class OutboxGauge(NamedTuple):
    name: str
    column: str  # of outbox_gauges()
    documentation: str
    on_relay: bool  # also kept by the relay (refreshed by its sweeper); the API reports every one at each scrape


# The outbox gauges, one table for both sources: the relay and the API's /metrics carry the same names and help,
# so one alert covers both.
OUTBOX_GAUGES: tuple[OutboxGauge, ...] = (
    OutboxGauge(
        "genesis_outbox_backlog",
        "pending",
        "PENDING outbox rows (exact up to 10000; above, an estimate from 2000 sampled ids, within about 2 %)",
        True,
    ),
    OutboxGauge(
        "genesis_outbox_blocked",
        "blocked",
        "PENDING rows held behind a FAILED or retrying row of their session (counted up to 10000 per session)",
        True,
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
