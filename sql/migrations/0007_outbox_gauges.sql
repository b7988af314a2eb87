-- Relay v3 (issue 22): the outbox gauges count FAILED rows by an index of their own (outbox_gauges(),
-- sql/functions/outbox_gauges.sql) instead of reading every unfinished row. Rows become FAILED
-- rarely (after their retries), so the index stays small and no insert or SENT update touches it.
CREATE INDEX IF NOT EXISTS idx_event_outbox_failed ON event_outbox (id) WHERE status = 'FAILED';
