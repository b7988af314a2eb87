-- Settles published rows as SENT, one statement per batch, with where each landed on Kafka
-- (`_partitions`, `_offsets`: aligned with `_ids`, from the broker's acknowledgement). Fenced:
-- only rows still held by `_claim_token` change; returns how many did (fewer: the claim is gone).
CREATE OR REPLACE FUNCTION mark_outbox_sent(_claim_token uuid, _ids bigint[],
                                            _partitions integer[] DEFAULT NULL, _offsets bigint[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _keys text[];
    _count integer;
BEGIN
    WITH landed AS (
        SELECT * FROM unnest(_ids, coalesce(_partitions, array_fill(NULL::integer, ARRAY[cardinality(_ids)])),
                             coalesce(_offsets, array_fill(NULL::bigint, ARRAY[cardinality(_ids)])))
                   AS l(id, kafka_partition, kafka_offset)
    ), sent AS (
        UPDATE event_outbox o
           SET status = 'SENT', sent_at = now(), attempts = o.attempts + 1, last_error = NULL,
               claim_token = NULL, claimed_until = NULL, next_attempt_at = NULL,
               kafka_partition = l.kafka_partition, kafka_offset = l.kafka_offset
          FROM landed l
         -- By primary key (= ANY): joined on l.id alone, stale statistics can plan a scan of the table.
         WHERE o.id = ANY (_ids) AND o.id = l.id AND o.claim_token = _claim_token
           AND o.status NOT IN ('SENT', 'FAILED', 'DISCARDED')  -- PENDING, by primary key (see claim_outbox)
        RETURNING o.key)
    SELECT array_agg(DISTINCT s.key), count(*) INTO _keys, _count FROM sent s;
    IF _keys IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM outbox_advance_heads(_keys, _claim_token);
    RETURN _count;
END;
$$;
