-- Operators: FAILED rows back to PENDING with a fresh retry budget; one (`_id`) or all (NULL).
CREATE OR REPLACE FUNCTION requeue_outbox(_id bigint DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _keys text[];
    _count integer;
BEGIN
    -- The keys' heads first, as every function that changes a key's rows takes them (discard_outbox
    -- locks the head, then the row; rows first here could deadlock with it).
    PERFORM 1 FROM outbox_heads h
     WHERE h.key IN (SELECT o.key FROM event_outbox o WHERE o.status = 'FAILED' AND (_id IS NULL OR o.id = _id))
     ORDER BY h.key FOR UPDATE;
    WITH requeued AS (
        UPDATE event_outbox o
           SET status = 'PENDING', attempts = 0, failed_at = NULL, next_attempt_at = NULL
         WHERE o.status = 'FAILED' AND (_id IS NULL OR o.id = _id)
        RETURNING o.key)
    SELECT array_agg(DISTINCT r.key), count(*) INTO _keys, _count FROM requeued r;
    IF _keys IS NOT NULL THEN
        PERFORM outbox_advance_heads(_keys);  -- the keys are fresh again
    END IF;
    IF _id IS NOT NULL AND _count = 0 THEN
        PERFORM genesis_refuse('GS406', format('Outbox row %s is not FAILED', _id), jsonb_build_object('id', _id));
    END IF;
    IF _count > 0 THEN
        PERFORM pg_notify('genesis_outbox_v1', '');
    END IF;
    RETURN _count;
END;
$$;
