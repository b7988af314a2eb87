-- Re-reads the heads of `_keys` after their rows changed (settled, scheduled, released, requeued,
-- discarded): the head moves to the oldest unfinished row, or the key leaves the table. The claim
-- `_token` gives up the key; a key another claim holds (one that took the key's later rows while
-- this one was in flight) stays with it. Called in the transaction that changed the rows.
CREATE OR REPLACE FUNCTION outbox_advance_heads(_keys text[], _token uuid DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- Locked first, in key order (no deadlock between settlers), in a statement of its own: a
    -- writer of a new row holds its key's head until commit, and the statements below run on a
    -- snapshot taken after that wait, so they see its row.
    PERFORM 1 FROM outbox_heads h WHERE h.key = ANY (_keys) ORDER BY h.key FOR UPDATE;

    WITH next AS (
        SELECT k.key, n.id, n.status, n.attempts, n.next_attempt_at
          FROM unnest(_keys) AS k(key)
          LEFT JOIN LATERAL (SELECT e.id, e.status, e.attempts, e.next_attempt_at FROM event_outbox e
                              WHERE e.key = k.key AND e.status IN ('PENDING', 'FAILED')
                              ORDER BY e.id LIMIT 1) n ON true)
    UPDATE outbox_heads h
       SET head_id = n.id,
           blocked = n.status = 'FAILED',
           retry = n.attempts > 0,
           due_at = CASE WHEN h.claim_token IS NULL OR h.claim_token = _token
                         THEN coalesce(n.next_attempt_at, now()) ELSE h.due_at END,
           claim_token = CASE WHEN h.claim_token = _token THEN NULL ELSE h.claim_token END
      FROM next n
     WHERE h.key = n.key AND n.id IS NOT NULL;

    DELETE FROM outbox_heads h
     WHERE h.key = ANY (_keys)
       AND NOT EXISTS (SELECT FROM event_outbox e WHERE e.key = h.key AND e.status IN ('PENDING', 'FAILED'));
END;
$$;
