-- The claim before relay v2 (git history: sql/functions/claim_outbox.sql), kept for tests/integration/
-- test_relay_claim_model.py, which compares the v2 claim with it. Created in pg_temp: never installed.
-- Since migration 0006 a row's lease is read from outbox_leases (the rows no longer carry it), and
-- the rows are only read, not leased: the test asks what it would claim, in a transaction it rolls back.
-- Claims up to `_batch_size` PENDING rows for one relay, keeping each key (session) in order:
-- a key is claimable only through its head, the oldest row that is neither SENT nor DISCARDED,
-- and only while that head is PENDING and unleased. The head's later rows come along in id
-- order (behind a head only PENDING rows follow: a key's rows are claimed from its head, so no
-- later row can have failed). Rows are leased, not locked: the claim token fences every later
-- update, and a relay that dies lets its rows come back when the lease runs out.
-- When the heads alone fill the batch, no row after the last head can make it into the batch,
-- so the followers are only looked up below it (with interleaved sessions: none at all).
-- Every lookup probes the (key, id) index or the primary key, one key or row at a time. Written
-- as joins, they were planned as scans of the whole backlog per key whenever the statistics still
-- described a near-empty outbox, i.e. right after a backlog had built up (an outage).
CREATE FUNCTION pg_temp.claim_outbox_v1(_batch_size integer, _lease interval DEFAULT '30 seconds')
RETURNS TABLE (id bigint, event_id uuid, topic text, key text, payload jsonb, headers jsonb,
               attempts integer, claim_token uuid)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    _token uuid := gen_random_uuid();
    _keys text[];
    _last bigint;  -- the last head's id when the heads fill the batch, else NULL (no bound)
    _ids bigint[];
BEGIN
    -- The oldest claimable heads, locked; another relay's heads are skipped, not waited for.
    SELECT array_agg(h.key), CASE WHEN count(*) = _batch_size THEN max(h.id) END INTO _keys, _last
      FROM (SELECT o.key, o.id FROM event_outbox o
             WHERE o.status = 'PENDING'
               AND NOT EXISTS (SELECT FROM outbox_leases l WHERE l.id = o.id AND l.claimed_until >= now())
               AND o.id = (SELECT min(e.id) FROM event_outbox e
                            WHERE e.key = o.key AND e.status IN ('PENDING', 'FAILED'))
             ORDER BY o.id LIMIT _batch_size
             FOR UPDATE SKIP LOCKED) h;
    IF _keys IS NULL THEN
        RETURN;
    END IF;

    -- Those keys' rows from their heads on, the oldest first, up to the batch size.
    SELECT array_agg(r.id) INTO _ids
      FROM (SELECT n.id
              FROM unnest(_keys) AS k(key)
              CROSS JOIN LATERAL (SELECT e.id FROM event_outbox e
                                   WHERE e.key = k.key AND e.status IN ('PENDING', 'FAILED')
                                     AND e.id <= coalesce(_last, 9223372036854775807)
                                   ORDER BY e.id LIMIT _batch_size) n
             ORDER BY n.id LIMIT _batch_size) r;

    -- Leased by primary key. The UPDATE re-checks each row as it locks it; the status test is
    -- spelled so that the planner cannot pick the partial PENDING index on stale statistics.
    RETURN QUERY
    WITH claimed AS (
        SELECT o.id, o.event_id, o.topic, o.key, o.payload, o.headers, o.attempts, _token
          FROM event_outbox o
         WHERE o.id = ANY (_ids)
           AND o.status NOT IN ('SENT', 'FAILED', 'DISCARDED')
           AND NOT EXISTS (SELECT FROM outbox_leases l WHERE l.id = o.id AND l.claimed_until >= now()))
    SELECT * FROM claimed c ORDER BY c.id;
END;
$$;
