-- Hands claimed rows back untouched (rows held behind a failed one, a batch never handed to the
-- producer: its lease ran short or the relay is stopping); their keys are claimable again, after `_delay` when given
-- (rows of a partition without a leader: not before it may have one, and no attempt counted).
-- Fenced as mark_outbox_sent is; returns how many rows were still held by `_claim_token`.
CREATE OR REPLACE FUNCTION release_outbox(_claim_token uuid, _ids bigint[], _delay interval DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _keys text[];
    _given bigint[];
    _count integer;
BEGIN
    PERFORM outbox_lock_heads(_ids, _claim_token);
    -- Without a delay no row is written: giving the key up is all a release does.
    WITH held AS (
        SELECT o.id, o.key
          FROM event_outbox o
         WHERE o.id = ANY (_ids)
           AND (SELECT o.id BETWEEN h.held_from AND h.held_to
                  FROM outbox_heads h WHERE h.key = o.key AND h.claim_token = _claim_token)
           AND o.status NOT IN ('SENT', 'FAILED', 'DISCARDED')),  -- PENDING, by primary key (see claim_outbox)
    delayed AS (
        UPDATE event_outbox o SET next_attempt_at = now() + _delay
          FROM held r WHERE _delay IS NOT NULL AND o.id = r.id)
    SELECT array_agg(r.key), array_agg(r.last), sum(r.rows) INTO _keys, _given, _count
      FROM (SELECT r.key, max(r.id) AS last, count(*) AS rows FROM held r GROUP BY r.key) r;
    IF _keys IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM outbox_advance_heads(_keys, _claim_token, _given);
    RETURN _count;
END;
$$;
