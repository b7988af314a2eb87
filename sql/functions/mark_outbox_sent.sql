-- Settles published rows as SENT, one statement per batch. Fenced: only rows still held by
-- `_claim_token` change. `_partitions` / `_offsets` (in the order of `_ids`, from the broker's
-- acknowledgement) record where each row landed; NULL arrays leave them NULL. Returns how many rows changed.
-- The signature before the trailing parameters were added: a second function beside this one would make
-- calls that name only the old arguments ambiguous. Dropped in the same transaction that creates this one.
DROP FUNCTION IF EXISTS mark_outbox_sent(uuid, bigint[]);
CREATE OR REPLACE FUNCTION mark_outbox_sent(_claim_token uuid, _ids bigint[],
                                            _partitions integer[] DEFAULT NULL, _offsets bigint[] DEFAULT NULL)
RETURNS integer
LANGUAGE sql VOLATILE AS $$
    -- unnest pads the shorter (or NULL) arrays with NULLs. Planned as a nested loop over the batch's ids, one
    -- primary-key probe each (EXPLAIN ANALYZE, 500 claimed rows among 300,000 SENT: join 1.6 ms of 7.7 ms).
    WITH landed AS (SELECT * FROM unnest(_ids, _partitions, _offsets) AS l (id, kafka_partition, kafka_offset)),
    sent AS (
        UPDATE event_outbox o
           SET status = 'SENT', sent_at = now(), attempts = o.attempts + 1, last_error = NULL,
               claim_token = NULL, claimed_until = NULL,
               kafka_partition = l.kafka_partition, kafka_offset = l.kafka_offset
          FROM landed l
         WHERE o.id = l.id AND o.claim_token = _claim_token
           AND o.status NOT IN ('SENT', 'FAILED', 'DISCARDED')  -- PENDING, by primary key (see claim_outbox)
        RETURNING 1)
    SELECT count(*)::integer FROM sent
$$;
