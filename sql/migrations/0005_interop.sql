-- Trace context and CloudEvents (CONTRACT §6): genesis_append_event, submit_command and create_session gain
-- trailing trace-context parameters, mark_outbox_sent the landing places. CREATE OR REPLACE with a longer
-- signature makes a second function beside the old one, and a call naming only the old arguments would then
-- be ambiguous; so the old signatures go here, and sql/functions installs the new ones right after.
DROP FUNCTION IF EXISTS genesis_append_event(uuid, text, jsonb, uuid, text, text);
DROP FUNCTION IF EXISTS submit_command(uuid, text, jsonb, text, text, text);
DROP FUNCTION IF EXISTS create_session(text, text);
DROP FUNCTION IF EXISTS mark_outbox_sent(uuid, bigint[]);
