-- Fails commands still pending after `_older_than`, with a Genesis.Session.CommandFailed event,
-- so a lost agent never locks a session's command type forever. Returns how many it failed.
CREATE OR REPLACE FUNCTION expire_stale_commands(_older_than interval, _max_rows integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _candidate record;
    _command command_inbox;
    _expired integer := 0;
    _reason text := format('timed out: still pending after %s', _older_than);
BEGIN
    FOR _candidate IN
        SELECT c.id, c.session_id FROM command_inbox c
         WHERE c.status IN ('RECEIVED', 'PROCESSING') AND c.created_at < now() - _older_than
         ORDER BY c.created_at LIMIT _max_rows
    LOOP
        -- Session first, as submit_command does; then re-check the command under the lock.
        PERFORM 1 FROM genesis_sessions s WHERE s.id = _candidate.session_id FOR UPDATE;
        UPDATE command_inbox c
           SET status = 'FAILED', error = _reason, updated_at = now(), completed_at = now()
         WHERE c.id = _candidate.id AND c.status IN ('RECEIVED', 'PROCESSING')
        RETURNING * INTO _command;
        CONTINUE WHEN NOT FOUND;
        UPDATE async_tasks t SET status = 'FAILED', error = _reason, updated_at = now(), completed_at = now()
         WHERE t.command_id = _command.id;
        PERFORM genesis_append_event(_command.session_id, 'Genesis.Session.CommandFailed',
            jsonb_build_object('command_id', _command.id, 'command_type', _command.command_type,
                               'reason', _reason),
            _command.id, _command.user_id, _command.request_id);
        _expired := _expired + 1;
    END LOOP;
    RETURN _expired;
END;
$$;
