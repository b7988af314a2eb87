-- Claims up to `_batch_size` PENDING rows for one relay, keeping each key (session) in order.
-- Keys are leased, not rows looked up: outbox_heads holds one row per key with unfinished rows
-- (admitted from outbox_new_rows, kept by the functions that settle the outbox), and a key is claimable while its
-- head is not FAILED, not leased and due. Due retries come first, then the longest-waiting fresh
-- heads; both are range scans of idx_outbox_heads_due that stop at the batch size, so a claim
-- reads O(batch) heads and index entries however many rows wait behind blocked, retrying or
-- leased heads, and never a SENT row (plan: docs/benchmarks-relay-history.md).
-- Each key's rows then come from its head on, by the (key, id) index, until the batch is full.
-- Only the heads are written (migration 0006): a head takes the claim's own token, the lease (due_at)
-- and the rows held, `held_from` to `held_to` (the first and last taken of its key); the rows are
-- read, not leased, and every later update of them is fenced through their key's head.
-- `_retries_only`: a relay whose broker is down still finishes the retries of its batch in flight
-- (CONTRACT §6) but claims nothing new. `_admit`: how many new rows to admit first
-- (outbox_admit_new); the relay passes 0 unless it was told of new rows (relay/worker.py).
-- Every claim has a token of its own: no two claims ever share a key or a token (relay v3), so
-- whatever one of them settles or hands back cannot touch another's rows.
-- The signature before relay v3 (a claim ahead continued the keys of the claim in flight, with its
-- token): dropped, so that a call naming only the leading arguments is not ambiguous.
DROP FUNCTION IF EXISTS claim_outbox(integer, interval, boolean, uuid, text[], bigint[], integer);
CREATE OR REPLACE FUNCTION claim_outbox(_batch_size integer, _lease interval DEFAULT '30 seconds',
                                        _retries_only boolean DEFAULT false, _admit integer DEFAULT 1000)
RETURNS TABLE (id bigint, event_id uuid, topic text, key text, payload jsonb, headers jsonb,
               attempts integer, claim_token uuid)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    _token uuid := gen_random_uuid();
    _ids bigint[];
    _held text[];
BEGIN
    IF _admit > 0 THEN
        PERFORM outbox_admit_new(_admit);
    END IF;

    -- One statement: for each lane (due retries, then fresh heads) its heads, locked as they are
    -- read, joined to each key's rows from its start in id order (one probe of the (key, id) index
    -- per key), cut at the batch size. The executor pulls heads only until the batch is full, so a
    -- claim locks the heads it uses, and the fresh lane is not even read when retries fill it.
    SELECT coalesce(array_agg(t.id), '{}'), coalesce(array_agg(DISTINCT t.key), '{}') INTO _ids, _held
      FROM (SELECT r.id, h.key
              FROM (SELECT v.retry FROM (VALUES (true), (false)) AS v(retry) WHERE v.retry OR NOT _retries_only) lane
             CROSS JOIN LATERAL (SELECT h.key, h.head_id FROM outbox_heads h
                                  WHERE NOT h.blocked AND h.retry = lane.retry AND h.due_at <= now()
                                  ORDER BY h.due_at, h.head_id LIMIT _batch_size FOR UPDATE SKIP LOCKED) h
             CROSS JOIN LATERAL (SELECT e.id FROM event_outbox e
                                  WHERE e.key = h.key AND e.status IN ('PENDING', 'FAILED') AND e.id >= h.head_id
                                  ORDER BY e.id LIMIT _batch_size) r
             LIMIT _batch_size) t;
    IF cardinality(_held) = 0 THEN
        RETURN;
    END IF;

    -- The rows are read again, on a snapshot taken now that their heads are locked: a row settled or
    -- discarded by whoever held its head before us is seen as it is (the lane's read may predate
    -- that). A key is taken up to its first FAILED row (an operator's mark_outbox_failed can leave one
    -- behind a PENDING head): what lies after it waits for it. Found by idx_event_outbox_failed_key
    -- (migration 0009), so the probe reads the key's FAILED rows only, never its PENDING ones.
    -- Keys are leased only for the rows taken, each held to its last one. The status test is spelled
    -- so that the planner cannot pick the partial PENDING index on stale statistics.
    RETURN QUERY
    WITH stops AS (
        SELECT f.key, min(f.id) AS at FROM event_outbox f
         WHERE f.status = 'FAILED' AND f.key = ANY (_held) GROUP BY f.key),
    taken AS (
        SELECT o.id, o.event_id, o.topic, o.key, o.payload, o.headers, o.attempts
          FROM event_outbox o LEFT JOIN stops s ON s.key = o.key
         WHERE o.id = ANY (_ids) AND o.status NOT IN ('SENT', 'FAILED', 'DISCARDED') AND (s.at IS NULL OR o.id < s.at)),
    leased AS (
        UPDATE outbox_heads h
           SET claim_token = _token, due_at = now() + _lease, held_from = t.first, held_to = t.last
          FROM (SELECT t.key, min(t.id) AS first, max(t.id) AS last FROM taken t GROUP BY t.key) t
         WHERE h.key = ANY (_held) AND h.key = t.key
        RETURNING 1)
    SELECT t.id, t.event_id, t.topic, t.key, t.payload, t.headers, t.attempts, _token FROM taken t ORDER BY t.id;
END;
$$;
