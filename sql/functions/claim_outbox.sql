-- Claims up to `_batch_size` PENDING rows for one relay, keeping each key (session) in order:
-- a key is claimable only through its head, the oldest row that is neither SENT nor DISCARDED,
-- and only while that head is PENDING and unleased. The head's later PENDING rows come along
-- in id order. Rows are leased, not locked: the claim token fences every later update, and a
-- relay that dies lets its rows come back when the lease runs out.
CREATE OR REPLACE FUNCTION claim_outbox(_batch_size integer, _lease interval DEFAULT '30 seconds')
RETURNS TABLE (id bigint, event_id uuid, topic text, key text, payload jsonb, headers jsonb,
               attempts integer, claim_token uuid)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    _token uuid := gen_random_uuid();
    _head_ids bigint[];
    _keys text[];
BEGIN
    SELECT array_agg(h.id), array_agg(h.key) INTO _head_ids, _keys
      FROM (SELECT o.id, o.key FROM event_outbox o
             WHERE o.status = 'PENDING' AND (o.claimed_until IS NULL OR o.claimed_until < now())
               AND NOT EXISTS (SELECT 1 FROM event_outbox e
                                WHERE e.key = o.key AND e.id < o.id AND e.status IN ('PENDING', 'FAILED'))
             ORDER BY o.id LIMIT _batch_size
             FOR UPDATE SKIP LOCKED) h;
    IF _head_ids IS NULL THEN
        RETURN;
    END IF;

    RETURN QUERY
    UPDATE event_outbox o
       SET claim_token = _token, claimed_until = now() + _lease
      FROM (SELECT c.id FROM event_outbox c
             WHERE c.id = ANY (_head_ids)
                OR (c.key = ANY (_keys) AND c.status = 'PENDING'
                    AND (c.claimed_until IS NULL OR c.claimed_until < now()))
             ORDER BY c.id LIMIT _batch_size
             FOR UPDATE) pick
     WHERE o.id = pick.id
    RETURNING o.id, o.event_id, o.topic, o.key, o.payload, o.headers, o.attempts, o.claim_token;
END;
$$;
