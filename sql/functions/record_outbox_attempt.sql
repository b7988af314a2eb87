-- A failed publish that will be retried: counts the attempt, keeps the error and extends the
-- lease so nobody else takes the rows while this relay waits to retry. Fenced by the token.
CREATE OR REPLACE FUNCTION record_outbox_attempt(_claim_token uuid, _ids bigint[], _error text,
                                                 _lease interval DEFAULT '30 seconds')
RETURNS integer
LANGUAGE sql VOLATILE AS $$
    WITH tried AS (
        UPDATE event_outbox o
           SET attempts = o.attempts + 1, last_error = _error, claimed_until = now() + _lease
         WHERE o.id = ANY (_ids) AND o.claim_token = _claim_token
           AND o.status NOT IN ('SENT', 'FAILED', 'DISCARDED')  -- PENDING, by primary key (see claim_outbox)
        RETURNING 1)
    SELECT count(*)::integer FROM tried
$$;
