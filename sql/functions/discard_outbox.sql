-- Operators: gives up on one FAILED (or unclaimed PENDING) row for good, with a reason; the
-- later rows of its key are released.
CREATE OR REPLACE FUNCTION discard_outbox(_id bigint, _reason text)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF _reason IS NULL OR btrim(_reason) = '' THEN
        PERFORM genesis_refuse('GS423', 'a reason is required to discard',
                               jsonb_build_object('fields', jsonb_build_object('reason', 'required')));
    END IF;
    UPDATE event_outbox o
       SET status = 'DISCARDED', last_error = 'discarded: ' || _reason, claim_token = NULL, claimed_until = NULL
     WHERE o.id = _id
       AND (o.status = 'FAILED' OR (o.status = 'PENDING' AND (o.claimed_until IS NULL OR o.claimed_until < now())));
    IF NOT FOUND THEN
        PERFORM genesis_refuse('GS406', format('Outbox row %s is not FAILED or unclaimed PENDING', _id),
                               jsonb_build_object('id', _id));
    END IF;
    PERFORM pg_notify('genesis_outbox_v1', '');
    RETURN 1;
END;
$$;
