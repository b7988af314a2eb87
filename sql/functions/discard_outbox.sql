-- Operators: gives up on one FAILED (or unclaimed PENDING) row for good, with a reason; the
-- later rows of its key are released.
CREATE OR REPLACE FUNCTION discard_outbox(_id bigint, _reason text)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _key text;
BEGIN
    IF _reason IS NULL OR btrim(_reason) = '' THEN
        PERFORM genesis_refuse('GS423', 'a reason is required to discard',
                               jsonb_build_object('fields', jsonb_build_object('reason', 'required')));
    END IF;
    -- The key's head first: a claim locks it before it reads the key's rows, so either the claim
    -- comes first (the row is then leased, and refused here) or it reads the row as DISCARDED.
    PERFORM 1 FROM outbox_heads h WHERE h.key = (SELECT o.key FROM event_outbox o WHERE o.id = _id) FOR UPDATE;
    UPDATE event_outbox o
       SET status = 'DISCARDED', last_error = 'discarded: ' || _reason, next_attempt_at = NULL
     WHERE o.id = _id
       AND (o.status = 'FAILED'
            OR (o.status = 'PENDING'
                AND NOT EXISTS (SELECT FROM outbox_heads h
                                 WHERE h.key = o.key AND h.claim_token IS NOT NULL AND h.due_at > now()
                                   AND o.id BETWEEN h.held_from AND h.held_to)))
    RETURNING o.key INTO _key;
    IF _key IS NULL THEN
        PERFORM genesis_refuse('GS406', format('Outbox row %s is not FAILED or unclaimed PENDING', _id),
                               jsonb_build_object('id', _id));
    END IF;
    -- A row waiting for its retry is unclaimed PENDING: discarded here, it is never published.
    PERFORM outbox_advance_heads(ARRAY[_key]);
    PERFORM pg_notify('genesis_outbox_v1', '');
    RETURN 1;
END;
$$;
