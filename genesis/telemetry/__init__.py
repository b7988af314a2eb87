"""Telemetry: tracing and its OTLP export, SQL spans, the metric names both /metrics share, the outbox gauges'
refresher. Any room may import it; it imports only the core."""
