-- Placeholder for relay v2's 0004_relay_v2.sql (another branch), so that this branch's 0005 keeps the
-- numbers without gaps. Delete this file when merging after relay v2: it does nothing.
SELECT 1;
