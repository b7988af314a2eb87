-- A command's status, visible only to the owner of its session.
CREATE OR REPLACE FUNCTION get_command(_session_id uuid, _command_id uuid, _user_id text)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    _command command_inbox;
BEGIN
    PERFORM get_session(_session_id, _user_id);
    SELECT * INTO _command FROM command_inbox c WHERE c.id = _command_id AND c.session_id = _session_id;
    IF NOT FOUND THEN
        PERFORM genesis_refuse('GS405', 'Command not found', jsonb_build_object('command_id', _command_id));
    END IF;
    RETURN jsonb_build_object(
        'command_id', _command.id, 'session_id', _command.session_id,
        'command_type', _command.command_type, 'status', _command.status,
        'payload', _command.payload, 'result', _command.result, 'error', _command.error,
        'created_at', _command.created_at, 'updated_at', _command.updated_at,
        'completed_at', _command.completed_at);
END;
$$;
