-- Issue 11 (8b): a claim leases keys, not rows. Leasing every claimed row wrote a new version of it
-- (with an entry in each of its indexes: the lease columns fit no HOT update on a full page) only for
-- the settle to write another one; the lease now lives on the key's head alone, which already held it.
-- A row is a claim's while its key's head carries the claim's token and the row is among those the
-- claim took and has not given back yet: from `held_from` to `held_to` (a claim gives a key's rows
-- back in order: a retried row first, the rows held behind it next). Stop running
-- relays before applying it (docs/operations.md): the leases they hold are dropped, so the rows
-- they held become claimable at once (published again, never lost).
ALTER TABLE outbox_heads ADD COLUMN held_from bigint, ADD COLUMN held_to bigint;
UPDATE outbox_heads h SET claim_token = NULL, due_at = coalesce(o.next_attempt_at, now())
  FROM event_outbox o WHERE o.id = h.head_id AND h.claim_token IS NOT NULL;
ALTER TABLE event_outbox DROP COLUMN claim_token, DROP COLUMN claimed_until;

-- Which rows are leased, and by which claim, as the row columns above used to say (operators, tests).
CREATE VIEW outbox_leases AS
SELECT o.id, o.key, h.claim_token, h.due_at AS claimed_until
  FROM outbox_heads h
  JOIN event_outbox o ON o.key = h.key AND o.id >= h.held_from AND o.id <= h.held_to AND o.status = 'PENDING'
 WHERE h.claim_token IS NOT NULL;

-- The trailing parameter is new (sql/functions re-creates it); the old signature would make calls ambiguous.
DROP FUNCTION IF EXISTS outbox_advance_heads(text[], uuid);
