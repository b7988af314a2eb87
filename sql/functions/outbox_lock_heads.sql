-- Locks the heads that claim `_token` holds of the keys of rows `_ids`, in key order as everywhere
-- (outbox_advance_heads), before a settle reads or changes those rows: its fence (the head's token
-- and held_from..held_to) and its update then see the heads as they stay until it commits. Shared by every function that settles a claim's rows.
CREATE OR REPLACE FUNCTION outbox_lock_heads(_ids bigint[], _token uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _keys text[];
BEGIN
    SELECT array_agg(DISTINCT o.key) INTO _keys FROM event_outbox o WHERE o.id = ANY (_ids);
    PERFORM 1 FROM outbox_heads h WHERE h.key = ANY (_keys) AND h.claim_token = _token
      ORDER BY h.key FOR UPDATE;
END;
$$;
