-- Gives up on rows after the last retry: FAILED with the error, the attempt counted and
-- failed_at set. A FAILED row holds back the later rows of its key until requeued or discarded.
CREATE OR REPLACE FUNCTION mark_outbox_failed(_claim_token uuid, _ids bigint[], _error text)
RETURNS integer
LANGUAGE sql VOLATILE AS $$
    WITH failed AS (
        UPDATE event_outbox o
           SET status = 'FAILED', attempts = o.attempts + 1, last_error = _error, failed_at = now(),
               claim_token = NULL, claimed_until = NULL
         WHERE o.id = ANY (_ids) AND o.claim_token = _claim_token
           AND o.status NOT IN ('SENT', 'FAILED', 'DISCARDED')  -- PENDING, by primary key (see claim_outbox)
        RETURNING 1)
    SELECT count(*)::integer FROM failed
$$;
