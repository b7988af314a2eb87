-- Admits up to `_limit` outbox rows written since the relays last looked (outbox_new_rows, filled
-- by the insert trigger of migration 0004): a key with no head gets one, at its oldest new row; a
-- key with a head already has its new rows behind it. Called by claim_outbox before it picks keys,
-- so a claim's cost is bounded by `_limit` plus the batch, never by the backlog. Returns how many.
CREATE OR REPLACE FUNCTION outbox_admit_new(_limit integer)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _ids bigint[];
    _keys text[];
    _count integer;
BEGIN
    -- Taken by one claimer each (SKIP LOCKED); deleted with this transaction. Locked in a
    -- statement of its own and deleted by primary key: as `DELETE … WHERE id IN (SELECT … FOR
    -- UPDATE SKIP LOCKED)`, a plan made while the queue looked empty (autoanalyze between bursts)
    -- was a nested-loop semi join that re-ran the locking subquery for every queued row, 20,000 ×
    -- 5,000 row locks for one burst: both relays spun in it for minutes.
    SELECT array_agg(q.outbox_id) INTO _ids
      FROM (SELECT q.outbox_id FROM outbox_new_rows q ORDER BY q.outbox_id LIMIT _limit FOR UPDATE SKIP LOCKED) q;
    IF _ids IS NULL THEN
        RETURN 0;
    END IF;
    WITH taken AS (DELETE FROM outbox_new_rows n WHERE n.outbox_id = ANY (_ids) RETURNING n.key)
    SELECT array_agg(t.key ORDER BY t.key), sum(t.rows)::integer INTO _keys, _count
      FROM (SELECT key, count(*) AS rows FROM taken GROUP BY key) t;
    IF _keys IS NULL THEN
        RETURN 0;
    END IF;

    -- An existing head is locked first (in key order, as settlers lock them): a relay settling the
    -- key's last row at this moment either deleted the head already (then it is created below) or
    -- runs after us and, on a snapshot taken after our wait, sees the new rows.
    PERFORM 1 FROM outbox_heads h WHERE h.key = ANY (_keys) ORDER BY h.key FOR UPDATE;

    -- No head: the key's oldest unfinished row is it. Not just the oldest row taken here: another
    -- claimer may be admitting an earlier row of the key at this moment (SKIP LOCKED above).
    INSERT INTO outbox_heads (key, head_id)
    SELECT k.key, n.id
      FROM unnest(_keys) AS k(key)
      CROSS JOIN LATERAL (SELECT e.id FROM event_outbox e
                           WHERE e.key = k.key AND e.status IN ('PENDING', 'FAILED')
                           ORDER BY e.id LIMIT 1) n
     WHERE NOT EXISTS (SELECT FROM outbox_heads h WHERE h.key = k.key)
    ON CONFLICT (key) DO NOTHING;
    RETURN _count;
END;
$$;
