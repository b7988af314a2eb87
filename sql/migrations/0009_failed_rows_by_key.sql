-- claim_outbox looks for the first FAILED row of each key it takes (its `stops`). The only index by key
-- was idx_event_outbox_unfinished_key, whose entries are every PENDING row as well, so the probe read the
-- heap of each unfinished row of the key: a claim on one session of 20,000 rows touched ~3,700 buffers
-- against ~630 for 200 sessions (tests/integration/relay/test_relay_v2.py). FAILED rows are rare, so an
-- index of their own by key stays tiny and makes the probe O(FAILED rows of the key).
CREATE INDEX IF NOT EXISTS idx_event_outbox_failed_key ON event_outbox (key, id) WHERE status = 'FAILED';
