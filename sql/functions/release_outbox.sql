-- Hands claimed rows back untouched (rows held behind a failed one, or a relay shutting down).
CREATE OR REPLACE FUNCTION release_outbox(_claim_token uuid, _ids bigint[])
RETURNS integer
LANGUAGE sql VOLATILE AS $$
    WITH released AS (
        UPDATE event_outbox o SET claim_token = NULL, claimed_until = NULL
         WHERE o.id = ANY (_ids) AND o.claim_token = _claim_token
           AND o.status NOT IN ('SENT', 'FAILED', 'DISCARDED')  -- PENDING, by primary key (see claim_outbox)
        RETURNING 1)
    SELECT count(*)::integer FROM released
$$;
