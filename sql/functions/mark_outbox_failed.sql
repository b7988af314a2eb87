-- Gives up on rows at once: FAILED with the error, the attempt counted and failed_at set. A FAILED
-- row holds back the later rows of its key until requeued or discarded. (The relay goes through
-- record_outbox_attempt, which fails a row once its retries are spent; this is for operators and
-- tests that need a FAILED row now.)
CREATE OR REPLACE FUNCTION mark_outbox_failed(_claim_token uuid, _ids bigint[], _error text)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _keys text[];
    _given bigint[];
    _count integer;
BEGIN
    -- Fenced as mark_outbox_sent is.
    PERFORM outbox_lock_heads(_ids, _claim_token);
    WITH failed AS (
        UPDATE event_outbox o
           SET status = 'FAILED', attempts = o.attempts + 1, last_error = _error, failed_at = now(),
               next_attempt_at = NULL
         WHERE o.id = ANY (_ids)
           AND (SELECT o.id BETWEEN h.held_from AND h.held_to
                  FROM outbox_heads h WHERE h.key = o.key AND h.claim_token = _claim_token)
           AND o.status NOT IN ('SENT', 'FAILED', 'DISCARDED')  -- PENDING, by primary key (see claim_outbox)
        RETURNING o.key, o.id)
    SELECT array_agg(f.key), array_agg(f.last), sum(f.rows) INTO _keys, _given, _count
      FROM (SELECT f.key, max(f.id) AS last, count(*) AS rows FROM failed f GROUP BY f.key) f;
    _count := coalesce(_count, 0);
    IF _keys IS NOT NULL THEN
        PERFORM outbox_advance_heads(_keys, _claim_token, _given);
    END IF;
    RETURN _count;
END;
$$;
