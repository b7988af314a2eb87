-- Hands claimed rows back untouched (rows held behind a failed one, a batch claimed ahead and not
-- published, a relay shutting down); their keys are claimable again, after `_delay` when given
-- (rows of a partition without a leader: not before it may have one, and no attempt counted).
CREATE OR REPLACE FUNCTION release_outbox(_claim_token uuid, _ids bigint[], _delay interval DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _keys text[];
    _count integer;
BEGIN
    WITH released AS (
        UPDATE event_outbox o
           SET claim_token = NULL, claimed_until = NULL,
               next_attempt_at = CASE WHEN _delay IS NULL THEN o.next_attempt_at ELSE now() + _delay END
         WHERE o.id = ANY (_ids) AND o.claim_token = _claim_token
           AND o.status NOT IN ('SENT', 'FAILED', 'DISCARDED')  -- PENDING, by primary key (see claim_outbox)
        RETURNING o.key)
    SELECT array_agg(DISTINCT r.key), count(*) INTO _keys, _count FROM released r;
    IF _keys IS NOT NULL THEN
        PERFORM outbox_advance_heads(_keys, _claim_token);
    END IF;
    RETURN _count;
END;
$$;
