-- Issue 15, the write path. Indexes that no query uses: each secondary index was checked against every
-- query of sql/functions, api/, genesis/ and relay/ (docs/benchmarks.md lists them and their users).
--   idx_genesis_sessions_user      no query lists a user's sessions (get_session reads by primary key)
--   idx_async_tasks_session        no query reads tasks by session (only by command_id, which is unique)
--   idx_async_tasks_open           no query reads open tasks (expiry goes through command_inbox)
--   idx_domain_events_correlation  complete_command, its only user, reads the command's events within
--                                  its session (idx_domain_events_aggregate_seq) instead
DROP INDEX IF EXISTS idx_genesis_sessions_user;
DROP INDEX IF EXISTS idx_async_tasks_session;
DROP INDEX IF EXISTS idx_async_tasks_open;
DROP INDEX IF EXISTS idx_domain_events_correlation;

-- Every command updates its session row once: free room on the row's page lets that update be HOT
-- (no new primary-key entry, no index page dirtied). Applies to pages written from now on.
ALTER TABLE genesis_sessions SET (fillfactor = 70);
