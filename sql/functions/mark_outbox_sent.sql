-- Settles published rows as SENT, one statement per batch. Fenced: only rows still held by
-- `_claim_token` change. `_partitions` / `_offsets` (in the order of `_ids`, from the broker's
-- acknowledgement) record where each row landed. Returns how many rows changed.
-- The signature before the trailing parameters were added: a second function beside this one would make
-- calls that name only the old arguments ambiguous. Dropped in the same transaction that creates this one.
DROP FUNCTION IF EXISTS mark_outbox_sent(uuid, bigint[]);
CREATE OR REPLACE FUNCTION mark_outbox_sent(_claim_token uuid, _ids bigint[],
                                            _partitions integer[] DEFAULT NULL, _offsets bigint[] DEFAULT NULL)
RETURNS integer
LANGUAGE sql VOLATILE AS $$
    WITH sent AS (
        UPDATE event_outbox o
           SET status = 'SENT', sent_at = now(), attempts = o.attempts + 1, last_error = NULL,
               claim_token = NULL, claimed_until = NULL,
               -- array_position over one batch (≤ RELAY_BATCH_SIZE ids) keeps the primary-key plan below.
               kafka_partition = _partitions[array_position(_ids, o.id)],
               kafka_offset = _offsets[array_position(_ids, o.id)]
         WHERE o.id = ANY (_ids) AND o.claim_token = _claim_token
           AND o.status NOT IN ('SENT', 'FAILED', 'DISCARDED')  -- PENDING, by primary key (see claim_outbox)
        RETURNING 1)
    SELECT count(*)::integer FROM sent
$$;
