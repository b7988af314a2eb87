-- Group commit (CONTRACT §3): records several commands in the caller's one transaction, each through
-- submit_command (the one place for the rules), each all-or-nothing, and answers one row per command in
-- input order: accepted (what submit_command returns) or refused (its SQLSTATE, message and detail, the
-- JSON fields of the error body). Nothing here checks a rule or writes a row itself.
--   SELECT * FROM submit_commands('[{"session_id": "…", "command_type": "SubmitFeedback",
--                                   "payload": {"feedback": "…"}, "user_id": "…"}]');
-- Each command object: session_id, command_type, payload, user_id, and optionally idempotency_key,
-- request_id, traceparent, tracestate (submit_command's parameters).
--
-- The cap. Each command runs inside a BEGIN … EXCEPTION block: one subtransaction (a savepoint), so a refused
-- command is rolled back alone and its neighbours stay. submit_command and what it calls (genesis_record_event,
-- genesis_refuse, the outbox trigger) open no subtransaction of their own, so a command costs exactly one
-- subtransaction XID. A backend caches 64 of them (PGPROC_MAX_CACHED_SUBXIDS); past that, every other backend's
-- snapshot has to look them up in pg_subtrans (an SLRU), the known cliff of subtransactions under load. 32 keeps
-- half of the cache free (for a caller's own savepoints, or a later EXCEPTION block in submit_command), and
-- gains little beyond it: the flush and notify lock are shared by the batch already at 8–16 commands.
--
-- Locks: every session of the batch first, in id order, before any command runs. submit_command then
-- re-locks its session (already held: no wait) and takes no other row lock that a second batch could hold
-- (its inserts are new rows; the duplicate guard's index only waits on a pending insert of the same session,
-- whose row we hold). Two batches therefore wait on each other only in id order, and never deadlock.
--
-- Isolation: READ COMMITTED is enough and what the API uses: the rules read the session row after its lock
-- (each statement of a VOLATILE function takes a fresh snapshot), and the duplicate guard is a unique index.
-- At REPEATABLE READ the lock of a session another transaction changed would fail the whole batch (40001).
--
-- NOTIFY: one per channel per batch. genesis_record_event skips its own while the transaction-local setting
-- genesis.batch is on; the batch then sends one `genesis_outbox_v1` and one `genesis_events_v1` whose payload
-- lists the sessions with new events, space-separated (one id is the old format). The setting is cleared at the
-- end, so a later submit_command in the same transaction (psql) notifies as always.
CREATE OR REPLACE FUNCTION submit_commands(_commands jsonb)
RETURNS TABLE (ordinal integer, command_id uuid, command_status text, is_async boolean, replayed boolean,
               event_ids uuid[], session jsonb, error_sqlstate text, error_message text, error_detail text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    _cap CONSTANT integer := 32;
    _command jsonb;
    _n bigint;
    _row record;
    _sessions text[] := '{}';
BEGIN
    IF jsonb_typeof(_commands) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'submit_commands takes a JSON array of commands' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_array_length(_commands) > _cap THEN
        RAISE EXCEPTION 'submit_commands takes at most % commands, got %', _cap, jsonb_array_length(_commands)
            USING ERRCODE = 'program_limit_exceeded';
    END IF;

    -- A malformed id is left to its own command (it fails there, in its savepoint), not to the batch.
    PERFORM 1 FROM genesis_sessions s
     WHERE s.id IN (SELECT (c ->> 'session_id')::uuid FROM jsonb_array_elements(_commands) c
                     WHERE c ->> 'session_id' ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$')
     ORDER BY s.id FOR UPDATE;

    PERFORM set_config('genesis.batch', 'on', true);
    FOR _command, _n IN SELECT c.value, c.ordinality FROM jsonb_array_elements(_commands) WITH ORDINALITY c LOOP
        ordinal := _n;
        error_sqlstate := NULL; error_message := NULL; error_detail := NULL;
        BEGIN
            SELECT * INTO STRICT _row
              FROM submit_command((_command ->> 'session_id')::uuid, _command ->> 'command_type',
                                  _command -> 'payload', _command ->> 'user_id', _command ->> 'idempotency_key',
                                  _command ->> 'request_id', _command ->> 'traceparent', _command ->> 'tracestate');
            command_id := _row.command_id; command_status := _row.command_status; is_async := _row.is_async;
            replayed := _row.replayed; event_ids := _row.event_ids; session := _row.session;
            IF NOT _row.replayed THEN
                _sessions := _sessions || (_command ->> 'session_id')::uuid::text;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS error_message = MESSAGE_TEXT, error_detail = PG_EXCEPTION_DETAIL;
            error_sqlstate := SQLSTATE;
            command_id := NULL; command_status := NULL; is_async := NULL; replayed := NULL; event_ids := NULL;
            session := NULL;
        END;
        RETURN NEXT;
    END LOOP;
    PERFORM set_config('genesis.batch', '', true);

    IF cardinality(_sessions) > 0 THEN
        -- Hints only, as genesis_record_event's: readers re-read the tables. At most 32 ids: far below
        -- NOTIFY's 8000-byte payload limit.
        PERFORM pg_notify('genesis_outbox_v1', '');
        PERFORM pg_notify('genesis_events_v1',
                          (SELECT string_agg(DISTINCT s, ' ') FROM unnest(_sessions) s));
    END IF;
END;
$$;
