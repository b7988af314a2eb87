-- A failed publish, scheduled in the database rather than slept through: counts the attempt and
-- keeps the error; a row with retries left is due again after `_base_delay` × 2^(attempts − 1)
-- (1, 2, 4 × base) and its key waits for it (any relay may take it then); a row out of retries
-- (`_max_retries`) is FAILED and holds its key back until requeued or discarded. The claim gives
-- the rows up either way. Fenced by the token (as mark_outbox_sent is): fewer `tried` than `_ids`
-- means the claim is gone.
CREATE OR REPLACE FUNCTION record_outbox_attempt(_claim_token uuid, _ids bigint[], _error text,
                                                 _base_delay interval DEFAULT '1 second',
                                                 _max_retries integer DEFAULT 3)
RETURNS TABLE (tried integer, failed integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _keys text[];
    _given bigint[];
BEGIN
    PERFORM outbox_lock_heads(_ids, _claim_token);
    WITH attempted AS (
        UPDATE event_outbox o
           SET attempts = o.attempts + 1, last_error = _error,
               status = CASE WHEN o.attempts + 1 > _max_retries THEN 'FAILED' ELSE o.status END,
               failed_at = CASE WHEN o.attempts + 1 > _max_retries THEN now() END,
               next_attempt_at = CASE WHEN o.attempts + 1 <= _max_retries
                                      THEN now() + _base_delay * 2 ^ o.attempts END
         WHERE o.id = ANY (_ids)
           AND (SELECT o.id BETWEEN h.held_from AND h.held_to
                  FROM outbox_heads h WHERE h.key = o.key AND h.claim_token = _claim_token)
           AND o.status NOT IN ('SENT', 'FAILED', 'DISCARDED')  -- PENDING, by primary key (see claim_outbox)
        RETURNING o.key, o.id, o.status)
    SELECT array_agg(a.key), array_agg(a.last), sum(a.rows), sum(a.failed) INTO _keys, _given, tried, failed
      FROM (SELECT a.key, max(a.id) AS last, count(*) AS rows, count(*) FILTER (WHERE a.status = 'FAILED') AS failed
              FROM attempted a GROUP BY a.key) a;
    tried := coalesce(tried, 0);
    failed := coalesce(failed, 0);
    IF _keys IS NOT NULL THEN
        PERFORM outbox_advance_heads(_keys, _claim_token, _given);
    END IF;
    RETURN NEXT;
END;
$$;
