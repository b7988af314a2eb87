-- For agents: records progress on an async command's task. The first report turns the command
-- PROCESSING (the duplicate guard covers it still) and its task RUNNING; every report wakes the
-- SSE hub, which sends it as `event: task-progress`. Not a domain event: nothing goes to the
-- outbox, and a stream that reconnects does not get it again.
CREATE OR REPLACE FUNCTION report_task_progress(_command_id uuid, _progress integer, _message text DEFAULT '')
RETURNS TABLE (command_id uuid, command_status text, progress integer)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    _command command_inbox;
BEGIN
    IF _progress IS NULL OR _progress NOT BETWEEN 0 AND 100 THEN
        PERFORM genesis_refuse('GS423', 'progress must be an integer 0-100',
                               jsonb_build_object('fields', jsonb_build_object('progress', 'integer 0..100')));
    END IF;
    _message := coalesce(_message, '');
    IF length(_message) > 1000 THEN
        PERFORM genesis_refuse('GS423', 'message must be at most 1000 characters',
                               jsonb_build_object('fields', jsonb_build_object('message', 'at most 1000 characters')));
    END IF;
    -- Only the command row is locked (complete_command takes the session, then the command), so a
    -- report never waits while holding a lock a completion needs.
    SELECT * INTO _command FROM command_inbox c
     WHERE c.id = _command_id AND EXISTS (SELECT 1 FROM async_tasks t WHERE t.command_id = c.id)
       FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM genesis_refuse('GS405', 'Command not found', jsonb_build_object('command_id', _command_id));
    END IF;
    IF _command.status NOT IN ('RECEIVED', 'PROCESSING') THEN
        PERFORM genesis_refuse('GS412', format('Command is already %s', _command.status),
                               jsonb_build_object('command_id', _command_id, 'command_status', _command.status));
    END IF;

    IF _command.status = 'RECEIVED' THEN
        UPDATE command_inbox c SET status = 'PROCESSING', updated_at = now() WHERE c.id = _command_id;
    END IF;
    UPDATE async_tasks t
       SET status = 'RUNNING', progress = _progress, progress_message = _message, updated_at = clock_timestamp()
     WHERE t.command_id = _command_id;

    -- A hint (the session, for the hub's subscriber check, and the command); the hub re-reads the task.
    PERFORM pg_notify('genesis_task_progress_v1', _command.session_id::text || ' ' || _command_id::text);
    RETURN QUERY SELECT _command_id, 'PROCESSING'::text, _progress;
END;
$$;
