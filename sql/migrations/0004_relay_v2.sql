-- Relay v2 (CONTRACT §6): retries scheduled in the database, and claims read a small table of
-- per-key heads instead of walking the backlog. Stop running relays before applying it: their
-- in-memory retries and leases are not carried over (rows they held become claimable at once).

-- When a row that failed may be published again (attempts and last_error already say how often and why).
ALTER TABLE event_outbox ADD COLUMN next_attempt_at timestamptz;

-- One row per key (session) with unfinished (PENDING or FAILED) outbox rows that a relay has seen:
-- its head, the oldest of them, and whether and when the key may be claimed. A claim leases keys here, so it reads
-- O(batch) heads whatever waits behind blocked, retrying or leased heads, and never a SENT row.
--   blocked:     the head is FAILED; nothing of the key is claimable until requeue or discard
--   retry:       the head failed before and waits for (or is due for) its next attempt
--   due_at:      when the key may be claimed: now for a fresh head, the head's next_attempt_at
--                for a retry, the end of the lease while a relay holds the key
--   claim_token: the relay claim holding the key, if any (expired once due_at has passed)
CREATE TABLE outbox_heads (
    key          text PRIMARY KEY,
    head_id      bigint NOT NULL,
    blocked      boolean NOT NULL DEFAULT false,
    retry        boolean NOT NULL DEFAULT false,
    due_at       timestamptz NOT NULL DEFAULT now(),
    claim_token  uuid
);
-- Claims range-scan this: due retries first, then fresh heads, the longest waiting (then the oldest) first;
-- head_id is in it so that heads of one commit (one due_at) come out in order without a sort.
CREATE INDEX idx_outbox_heads_due ON outbox_heads (retry, due_at, head_id) WHERE NOT blocked;

-- Rows written since the relays last looked: the writer's transaction only appends here (a plain
-- INSERT, which never conflicts, so submit_command at REPEATABLE READ never waits for or fails on
-- a relay), and the next claim admits them (outbox_admit_new): their keys get a head if they have
-- none. A key's head is thus only ever written by relays, at READ COMMITTED.
CREATE TABLE outbox_new_rows (
    outbox_id  bigint PRIMARY KEY,
    key        text NOT NULL
);
CREATE FUNCTION outbox_note_new_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'PENDING' THEN
        INSERT INTO outbox_new_rows (outbox_id, key) VALUES (NEW.id, NEW.key);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER event_outbox_new_rows AFTER INSERT ON event_outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_note_new_row();

-- Existing data: every key with unfinished rows gets its head. Leases and in-memory retries of
-- the relays stopped for the upgrade are dropped: a row that was being retried is due at once.
UPDATE event_outbox SET claim_token = NULL, claimed_until = NULL WHERE status IN ('PENDING', 'FAILED');
INSERT INTO outbox_heads (key, head_id, blocked, retry, due_at)
SELECT DISTINCT ON (o.key) o.key, o.id, o.status = 'FAILED', o.attempts > 0, now()
  FROM event_outbox o WHERE o.status IN ('PENDING', 'FAILED')
 ORDER BY o.key, o.id;

-- Signatures that change (sql/functions re-creates them): fencing counts, landing, scheduling.
DROP FUNCTION IF EXISTS claim_outbox(integer, interval);
DROP FUNCTION IF EXISTS mark_outbox_sent(uuid, bigint[]);
DROP FUNCTION IF EXISTS record_outbox_attempt(uuid, bigint[], text, interval);
DROP FUNCTION IF EXISTS release_outbox(uuid, bigint[]);
