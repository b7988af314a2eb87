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
    UPDATE event_outbox o
       SET status = 'DISCARDED', last_error = 'discarded: ' || _reason, claim_token = NULL, claimed_until = NULL,
           next_attempt_at = NULL
     WHERE o.id = _id
       AND (o.status = 'FAILED' OR (o.status = 'PENDING' AND (o.claimed_until IS NULL OR o.claimed_until < now())))
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
