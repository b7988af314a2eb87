-- Fails commands still pending after `_older_than`, with a Genesis.Session.CommandFailed event,
-- so a lost agent never locks a session's command type forever. Returns how many it failed.
-- Locks in one order, as every writer of several sessions does: the candidates' sessions first, by id, then
-- each command under its session's lock. Two relays sweeping at once then queue behind each other; taken in
-- created_at order instead, ties (a group commit's commands share one) came in a different order to each
-- sweep and could deadlock.
CREATE OR REPLACE FUNCTION expire_stale_commands(_older_than interval, _max_rows integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _candidates uuid[];
    _candidate record;
    _command command_inbox;
    _expired integer := 0;
    _reason text := format('timed out: still pending after %s', _older_than);
BEGIN
    SELECT array_agg(c.id) INTO _candidates
      FROM (SELECT c.id FROM command_inbox c
             WHERE c.status IN ('RECEIVED', 'PROCESSING') AND c.created_at < now() - _older_than
             ORDER BY c.created_at LIMIT _max_rows) c;
    IF _candidates IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM genesis_sessions s
     WHERE s.id IN (SELECT c.session_id FROM command_inbox c WHERE c.id = ANY (_candidates))
     ORDER BY s.id FOR UPDATE;
    FOR _candidate IN
        SELECT c.id FROM command_inbox c WHERE c.id = ANY (_candidates) ORDER BY c.session_id, c.created_at, c.id
    LOOP
        -- Re-checked under the session's lock: another sweep or an agent may have settled it meanwhile.
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
