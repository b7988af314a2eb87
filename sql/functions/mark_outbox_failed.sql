-- Gives up on rows at once: FAILED with the error, the attempt counted and failed_at set. A FAILED
-- row holds back the later rows of its key until requeued or discarded. (The relay goes through
-- record_outbox_attempt, which fails a row once its retries are spent; this is for operators and
-- tests that need a FAILED row now.)
CREATE OR REPLACE FUNCTION mark_outbox_failed(_claim_token uuid, _ids bigint[], _error text)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _keys text[];
    _count integer;
BEGIN
    WITH failed AS (
        UPDATE event_outbox o
           SET status = 'FAILED', attempts = o.attempts + 1, last_error = _error, failed_at = now(),
               claim_token = NULL, claimed_until = NULL, next_attempt_at = NULL
         WHERE o.id = ANY (_ids) AND o.claim_token = _claim_token
           AND o.status NOT IN ('SENT', 'FAILED', 'DISCARDED')  -- PENDING, by primary key (see claim_outbox)
        RETURNING o.key)
    SELECT array_agg(DISTINCT f.key), count(*) INTO _keys, _count FROM failed f;
    IF _keys IS NOT NULL THEN
        PERFORM outbox_advance_heads(_keys, _claim_token);
    END IF;
    RETURN _count;
END;
$$;
