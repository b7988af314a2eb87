-- For agents and operators: settles an async command as COMPLETED or FAILED and appends its
-- result event (the catalogue's completed_event / failed_event) through the outbox.
-- Idempotent, because agents are at-least-once: the same completion again (same outcome, same
-- result) answers what the first one answered and records nothing; a different completion of a
-- settled command is GS412 (COMMAND_NOT_PENDING). Trailing parameters added later must have defaults.
CREATE OR REPLACE FUNCTION complete_command(_command_id uuid, _outcome text, _result jsonb DEFAULT '{}'::jsonb)
RETURNS TABLE (command_id uuid, command_status text, event_id uuid)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    _command command_inbox;
    _rule record;
    _event domain_events;
    _result_event_type text;
    _earlier uuid;
    _trace jsonb;
BEGIN
    IF _outcome IS NULL OR _outcome NOT IN ('COMPLETED', 'FAILED') THEN
        PERFORM genesis_refuse('GS423', 'outcome must be COMPLETED or FAILED',
                               jsonb_build_object('fields', jsonb_build_object('outcome', 'COMPLETED or FAILED')));
    END IF;
    _result := coalesce(_result, '{}'::jsonb);
    IF jsonb_typeof(_result) <> 'object' THEN
        PERFORM genesis_refuse('GS423', 'result must be a JSON object',
                               jsonb_build_object('fields', jsonb_build_object('result', 'must be an object')));
    END IF;
    SELECT * INTO _command FROM command_inbox c WHERE c.id = _command_id;
    IF NOT FOUND THEN
        PERFORM genesis_refuse('GS405', 'Command not found', jsonb_build_object('command_id', _command_id));
    END IF;
    -- Same lock order as submit_command: the session first, then the command.
    PERFORM 1 FROM genesis_sessions s WHERE s.id = _command.session_id FOR UPDATE;
    SELECT * INTO _command FROM command_inbox c WHERE c.id = _command_id FOR UPDATE;
    SELECT * INTO _rule FROM genesis_command_catalogue() c WHERE c.command_type = _command.command_type;
    _result_event_type := CASE WHEN _outcome = 'COMPLETED' THEN _rule.completed_event ELSE _rule.failed_event END;

    IF _command.status NOT IN ('RECEIVED', 'PROCESSING') THEN
        -- A retry of the completion that settled it (an agent that crashed before its commit) gets
        -- the first answer. A command settled otherwise (timed out, or a sync command) has no such event.
        IF _command.status = _outcome AND coalesce(_command.result, '{}'::jsonb) = _result THEN
            SELECT e.event_id INTO _earlier FROM domain_events e
             WHERE e.aggregate_id = _command.session_id AND e.correlation_id = _command_id
               AND e.event_type = _result_event_type
             ORDER BY e.id LIMIT 1;
            IF FOUND THEN
                RETURN QUERY SELECT _command_id, _outcome, _earlier;
                RETURN;
            END IF;
        END IF;
        PERFORM genesis_refuse('GS412', format('Command is already %s', _command.status),
                               jsonb_build_object('command_id', _command_id, 'command_status', _command.status));
    END IF;

    -- The result event continues the trace of the request that sent the command (CONTRACT §6).
    -- Within the session (its index): the command's events are among the session's few.
    SELECT e.metadata INTO _trace FROM domain_events e
     WHERE e.aggregate_id = _command.session_id AND e.correlation_id = _command_id ORDER BY e.id LIMIT 1;
    _event := genesis_append_event(
        _command.session_id, _result_event_type,
        jsonb_build_object('command_id', _command.id, 'command_type', _command.command_type, 'result', _result),
        _command.id, _command.user_id, _command.request_id, _trace ->> 'traceparent', _trace ->> 'tracestate');

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
