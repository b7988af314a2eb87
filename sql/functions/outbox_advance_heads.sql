-- Re-reads the heads of `_keys` after their rows changed (settled, scheduled, released, requeued,
-- discarded): the head moves to the oldest unfinished row, or the key leaves the table. The claim
-- `_token` gives up the key, unless it still holds rows of it after those it gave back now
-- (`_given`, aligned with `_keys`: the last row of each it settled or released; a claim gives its
-- rows back in order, a settle in steps: the sent rows, then a failed one, then those held behind
-- it): then it holds from the next one on. A key another claim holds stays with it. Called in
-- the transaction that changed the rows.
CREATE OR REPLACE FUNCTION outbox_advance_heads(_keys text[], _token uuid DEFAULT NULL, _given bigint[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- Locked first, in a statement of its own and in key order, as outbox_admit_new locks them
    -- (claims never wait for a head: SKIP LOCKED), so the two cannot deadlock. The statements
    -- below run on a snapshot taken after the wait: an admission that went first is seen; one
    -- that comes after finds the head moved or gone and creates it again if rows remain. A
    -- writer never touches a head (it appends to outbox_new_rows), so a row committed after this
    -- snapshot is still admitted (migration 0004). The settling functions lock them before
    -- changing rows already; this is then a no-op.
    PERFORM 1 FROM outbox_heads h WHERE h.key = ANY (_keys) ORDER BY h.key FOR UPDATE;

    -- Every row of a key before its head is finished, so the lookups start at the head: the
    -- (key, id) index keeps entries of rows SENT since its last vacuum, and a long session drained
    -- batch by batch would otherwise step over all of them at every settle. One lookup per key,
    -- shared by the update and the delete (one statement): as a NOT EXISTS of its own, the delete
    -- was planned as an anti join over the whole index on stale statistics (200 ms at batch 500).
    WITH next AS (
        SELECT h.key, (h.claim_token = _token AND g.last < h.held_to) IS TRUE AS keep, g.last,
               n.id, n.status, n.attempts, n.next_attempt_at
          FROM unnest(_keys, _given) AS g(key, last)
          JOIN outbox_heads h ON h.key = g.key
          LEFT JOIN LATERAL (SELECT e.id, e.status, e.attempts, e.next_attempt_at FROM event_outbox e
                              WHERE e.key = h.key AND e.id >= h.head_id AND e.status IN ('PENDING', 'FAILED')
                              ORDER BY e.id LIMIT 1) n ON true
         WHERE h.key = ANY (_keys)),  -- by the primary key, never a scan of the heads
    moved AS (
        UPDATE outbox_heads h
           SET head_id = n.id,
               blocked = n.status = 'FAILED',
               retry = n.attempts > 0,
               due_at = CASE WHEN n.keep THEN h.due_at
                             WHEN h.claim_token IS NULL OR h.claim_token = _token
                             THEN coalesce(n.next_attempt_at, now()) ELSE h.due_at END,
               claim_token = CASE WHEN h.claim_token = _token AND NOT n.keep THEN NULL ELSE h.claim_token END,
               held_to = CASE WHEN h.claim_token = _token AND NOT n.keep THEN NULL ELSE h.held_to END,
               held_from = CASE WHEN n.keep THEN n.last + 1
                                WHEN h.claim_token = _token THEN NULL ELSE h.held_from END
          FROM next n
         WHERE h.key = n.key AND n.id IS NOT NULL
        RETURNING 1)
    DELETE FROM outbox_heads h
     USING next n
     WHERE h.key = n.key AND n.id IS NULL;
END;
$$;
