-- Settles published rows as SENT, one statement per batch. Fenced: only rows still held by
-- `_claim_token` change. Returns how many did.
CREATE OR REPLACE FUNCTION mark_outbox_sent(_claim_token uuid, _ids bigint[])
RETURNS integer
LANGUAGE sql VOLATILE AS $$
    WITH sent AS (
        UPDATE event_outbox o
           SET status = 'SENT', sent_at = now(), attempts = o.attempts + 1, last_error = NULL,
               claim_token = NULL, claimed_until = NULL
         WHERE o.id = ANY (_ids) AND o.claim_token = _claim_token
           AND o.status NOT IN ('SENT', 'FAILED', 'DISCARDED')  -- PENDING, by primary key (see claim_outbox)
        RETURNING 1)
    SELECT count(*)::integer FROM sent
$$;
