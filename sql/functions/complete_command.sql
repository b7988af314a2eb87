-- For agents and operators: settles an async command as COMPLETED or FAILED and appends its
-- result event (the catalogue's completed_event / failed_event) through the outbox.
CREATE OR REPLACE FUNCTION complete_command(_command_id uuid, _outcome text, _result jsonb DEFAULT '{}'::jsonb)
RETURNS TABLE (command_id uuid, command_status text, event_id uuid)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    _command command_inbox;
    _rule record;
    _event domain_events;
BEGIN
    IF _outcome IS NULL OR _outcome NOT IN ('COMPLETED', 'FAILED') THEN
        PERFORM genesis_refuse('GS423', 'outcome must be COMPLETED or FAILED',
                               jsonb_build_object('fields', jsonb_build_object('outcome', 'COMPLETED or FAILED')));
    END IF;
    SELECT * INTO _command FROM command_inbox c WHERE c.id = _command_id;
    IF NOT FOUND THEN
        PERFORM genesis_refuse('GS405', 'Command not found', jsonb_build_object('command_id', _command_id));
    END IF;
    -- Same lock order as submit_command: the session first, then the command.
    PERFORM 1 FROM genesis_sessions s WHERE s.id = _command.session_id FOR UPDATE;
    SELECT * INTO _command FROM command_inbox c WHERE c.id = _command_id FOR UPDATE;
    IF _command.status NOT IN ('RECEIVED', 'PROCESSING') THEN
        PERFORM genesis_refuse('GS412', format('Command is already %s', _command.status),
                               jsonb_build_object('command_id', _command_id, 'command_status', _command.status));
    END IF;
    SELECT * INTO _rule FROM genesis_command_catalogue() c WHERE c.command_type = _command.command_type;

    _event := genesis_append_event(
        _command.session_id,
        CASE WHEN _outcome = 'COMPLETED' THEN _rule.completed_event ELSE _rule.failed_event END,
        jsonb_build_object('command_id', _command.id, 'command_type', _command.command_type,
                           'result', coalesce(_result, '{}'::jsonb)),
        _command.id, _command.user_id, _command.request_id);

    UPDATE command_inbox c
       SET status = _outcome, result = _result, updated_at = now(), completed_at = now(),
           error = CASE WHEN _outcome = 'FAILED' THEN coalesce(_result ->> 'error', 'failed') END
     WHERE c.id = _command_id;
    UPDATE async_tasks t
       SET status = _outcome, result = _result, updated_at = now(), completed_at = now(),
           progress = CASE WHEN _outcome = 'COMPLETED' THEN 100 ELSE t.progress END,
           error = CASE WHEN _outcome = 'FAILED' THEN coalesce(_result ->> 'error', 'failed') END
     WHERE t.command_id = _command_id;

    RETURN QUERY SELECT _command_id, _outcome, _event.event_id;
END;
$$;
