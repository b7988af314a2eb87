-- Claims up to `_batch_size` PENDING rows for one relay, keeping each key (session) in order.
-- Keys are leased, not rows looked up: outbox_heads holds one row per key with unfinished rows
-- (admitted from outbox_new_rows, kept by the functions that settle the outbox), and a key is claimable while its
-- head is not FAILED, not leased and due. Due retries come first, then the longest-waiting fresh
-- heads; both are range scans of idx_outbox_heads_due that stop at the batch size, so a claim
-- reads O(batch) heads and index entries however many rows wait behind blocked, retrying or
-- leased heads, and never a SENT row (plan: docs/benchmarks.md).
-- Each key's rows then come from its head on, by the (key, id) index, until the batch is full.
-- Only the heads are written (migration 0006): a head takes the claim token, the lease (due_at) and
-- the rows held, `held_from` to `held_to` (the first and last taken of its key); the rows are read,
-- not leased, and every later update of them is fenced through their key's head.
-- `_retries_only`: a relay whose broker is down still finishes the retries of its batch in flight
-- (CONTRACT §6) but claims nothing new. `_behind` (a claim in flight) with `_behind_keys` and
-- `_behind_after` (the last id it holds of each): a batch claimed ahead may continue those keys
-- after their last held row, so one long session is pipelined too. It takes the token of the claim
-- in flight, so a key it continues stays with one token, held to its last row.
-- `_admit`: how many new rows to admit first (outbox_admit_new); psql callers leave the default.
CREATE OR REPLACE FUNCTION claim_outbox(_batch_size integer, _lease interval DEFAULT '30 seconds',
                                        _retries_only boolean DEFAULT false, _behind uuid DEFAULT NULL,
                                        _behind_keys text[] DEFAULT '{}', _behind_after bigint[] DEFAULT '{}',
                                        _admit integer DEFAULT 1000)
RETURNS TABLE (id bigint, event_id uuid, topic text, key text, payload jsonb, headers jsonb,
               attempts integer, claim_token uuid)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    _token uuid := coalesce(_behind, gen_random_uuid());
    _more text[];
    _ids bigint[] := '{}';
    _taken bigint[];
    _held text[] := '{}';
BEGIN
    -- Rows written since the last claim first: their sessions may need a head. The relay passes 0
    -- and admits in a statement of its own, only when told of new rows (relay/worker.py).
    IF _admit > 0 THEN
        PERFORM outbox_admit_new(_admit);
    END IF;

    -- Each lane is one statement: its heads, locked as they are read, joined to each key's rows
    -- from its start in id order (one probe of the (key, id) index per key), cut at the room left.
    -- The executor pulls heads only until the batch is full, so a claim locks the heads it uses,
    -- not a batch of them per lane (a per-key loop of statements was a third of a claim's time).

    -- Due retries, the longest due first; other relays' keys being claimed are skipped.
    SELECT coalesce(array_agg(t.id), '{}'), coalesce(array_agg(DISTINCT t.key), '{}') INTO _ids, _held
      FROM (SELECT r.id, h.key
              FROM (SELECT h.key, h.head_id FROM outbox_heads h
                     WHERE NOT h.blocked AND h.retry AND h.due_at <= now()
                     ORDER BY h.due_at, h.head_id LIMIT _batch_size FOR UPDATE SKIP LOCKED) h
             CROSS JOIN LATERAL (SELECT e.id FROM event_outbox e
                                  WHERE e.key = h.key AND e.status IN ('PENDING', 'FAILED') AND e.id >= h.head_id
                                  ORDER BY e.id LIMIT _batch_size) r
             LIMIT _batch_size) t;

    IF NOT _retries_only AND cardinality(_ids) < _batch_size THEN
        SELECT coalesce(array_agg(t.id), '{}'), coalesce(array_agg(DISTINCT t.key), '{}') INTO _taken, _more
          FROM (SELECT r.id, h.key
                  FROM (SELECT h.key, h.head_id FROM outbox_heads h
                         WHERE NOT h.blocked AND NOT h.retry AND h.due_at <= now()
                         ORDER BY h.due_at, h.head_id LIMIT _batch_size - cardinality(_ids) FOR UPDATE SKIP LOCKED) h
                 CROSS JOIN LATERAL (SELECT e.id FROM event_outbox e
                                      WHERE e.key = h.key AND e.status IN ('PENDING', 'FAILED') AND e.id >= h.head_id
                                      ORDER BY e.id LIMIT _batch_size - cardinality(_ids)) r
                 LIMIT _batch_size - cardinality(_ids)) t;
        _ids := _ids || _taken;
        _held := _held || _more;
    END IF;

    -- Last, so other sessions are not starved by one long one: it goes on only with room to spare.
    IF NOT _retries_only AND cardinality(_behind_keys) > 0 AND cardinality(_ids) < _batch_size THEN
        -- The keys of the claim in flight that it still holds, after the rows it holds.
        -- Locked: the settling of the claim in flight gives them up in the same way, so either it
        -- ran first (the key is fresh again, claimed above like any other) or it keeps them here.
        -- Never waited for (a writer may hold one): a key skipped is just not continued this time.
        SELECT coalesce(array_agg(t.id), '{}'), coalesce(array_agg(DISTINCT t.key), '{}') INTO _taken, _more
          FROM (SELECT r.id, c.key
                  FROM (SELECT h.key, b.after, b.ord
                          FROM unnest(_behind_keys, _behind_after) WITH ORDINALITY AS b(key, after, ord)
                          JOIN outbox_heads h ON h.key = b.key
                         WHERE h.claim_token = _behind AND h.due_at > now() AND NOT h.blocked
                           AND NOT h.key = ANY (_held)
                         ORDER BY b.ord
                           FOR UPDATE OF h SKIP LOCKED) c
                 CROSS JOIN LATERAL (SELECT e.id FROM event_outbox e
                                      WHERE e.key = c.key AND e.status IN ('PENDING', 'FAILED') AND e.id > c.after
                                      ORDER BY e.id LIMIT _batch_size - cardinality(_ids)) r
                 LIMIT _batch_size - cardinality(_ids)) t;
        _ids := _ids || _taken;
        _held := _held || _more;
    END IF;
    IF cardinality(_held) = 0 THEN
        RETURN;
    END IF;

    -- The rows are read again, on a snapshot taken now that their heads are locked: a row settled or
    -- discarded by whoever held its head before us is seen as it is (the lanes' reads may predate
    -- that). Keys are leased only for the rows taken, each held to its last one. The status test is
    -- spelled so that the planner cannot pick the partial PENDING index on stale statistics.
    RETURN QUERY
    WITH taken AS (
        SELECT o.id, o.event_id, o.topic, o.key, o.payload, o.headers, o.attempts
          FROM event_outbox o
         WHERE o.id = ANY (_ids) AND o.status NOT IN ('SENT', 'FAILED', 'DISCARDED')),
    leased AS (
        UPDATE outbox_heads h
           SET claim_token = _token, due_at = now() + _lease, held_to = t.last,
               -- a key continued (held by the claim in flight, whose token this is) keeps its first row
               held_from = CASE WHEN h.claim_token = _token AND h.due_at > now() THEN h.held_from ELSE t.first END
          FROM (SELECT t.key, min(t.id) AS first, max(t.id) AS last FROM taken t GROUP BY t.key) t
         WHERE h.key = ANY (_held) AND h.key = t.key
        RETURNING 1)
    SELECT t.id, t.event_id, t.topic, t.key, t.payload, t.headers, t.attempts, _token FROM taken t ORDER BY t.id;
END;
$$;
