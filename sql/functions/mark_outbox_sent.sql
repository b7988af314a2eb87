-- Settles published rows as SENT, one statement per batch, with where each landed on Kafka
-- (`_partitions`, `_offsets`: aligned with `_ids`, from the broker's acknowledgement; `_topic`, the
-- relay's KAFKA_TOPIC, which may differ from the default the row was written under). Fenced:
-- only rows still held by `_claim_token` change (their key's head carries the token and they are
-- among the rows it holds, held_from to held_to: claim_outbox); returns how many did (fewer: the
-- claim is gone).
-- The signature before the trailing parameters were added: a second function beside this one would make
-- calls that name only the old arguments ambiguous. Dropped in the same transaction that creates this one.
DROP FUNCTION IF EXISTS mark_outbox_sent(uuid, bigint[]);
DROP FUNCTION IF EXISTS mark_outbox_sent(uuid, bigint[], integer[], bigint[]);
CREATE OR REPLACE FUNCTION mark_outbox_sent(_claim_token uuid, _ids bigint[],
                                            _partitions integer[] DEFAULT NULL, _offsets bigint[] DEFAULT NULL,
                                            _topic text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _keys text[];
    _given bigint[];
    _count integer;
BEGIN
    -- The heads first, in key order as everywhere (outbox_advance_heads): the fence below and the
    -- update then see them as they stay until we commit.
    PERFORM outbox_lock_heads(_ids, _claim_token);
    -- By primary key (= ANY) alone, with each row's landing looked up by its position in `_ids`:
    -- joined to the unnested arrays, the planner (which takes an unnest for 10 rows and the
    -- update for one) chose a nested loop that re-ran the unnest for every row, 250,000 pairs
    -- (30 ms) at batch 500; joined on the id alone, stale statistics can plan a scan of the table.
    -- The fence is a subquery per row (one probe of the heads' primary key) for the same reason:
    -- joined to the heads, each head re-ran the `= ANY` scan of all 500 ids (50,000 buffers, 29 ms).
    WITH sent AS (
        UPDATE event_outbox o
           SET status = 'SENT', sent_at = now(), attempts = o.attempts + 1, last_error = NULL,
               next_attempt_at = NULL,
               kafka_partition = _partitions[array_position(_ids, o.id)],
               kafka_offset = _offsets[array_position(_ids, o.id)],
               topic = coalesce(_topic, o.topic)
         WHERE o.id = ANY (_ids)
           AND (SELECT o.id BETWEEN h.held_from AND h.held_to
                  FROM outbox_heads h WHERE h.key = o.key AND h.claim_token = _claim_token)
           AND o.status NOT IN ('SENT', 'FAILED', 'DISCARDED')  -- PENDING, by primary key (see claim_outbox)
        RETURNING o.key, o.id)
    SELECT array_agg(s.key), array_agg(s.last), sum(s.rows) INTO _keys, _given, _count
      FROM (SELECT s.key, max(s.id) AS last, count(*) AS rows FROM sent s GROUP BY s.key) s;
    IF _keys IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM outbox_advance_heads(_keys, _claim_token, _given);
    RETURN _count;
END;
$$;
