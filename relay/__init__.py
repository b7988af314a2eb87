"""The message relay: publishes the event outbox to Kafka."""
