-- The session as its owner sees it; to anyone else it does not exist (GS404).
CREATE OR REPLACE FUNCTION get_session(_session_id uuid, _user_id text)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    _session genesis_sessions;
BEGIN
    SELECT * INTO _session FROM genesis_sessions s WHERE s.id = _session_id AND s.user_id = _user_id;
    IF NOT FOUND THEN
        PERFORM genesis_refuse('GS404', 'Session not found', jsonb_build_object('session_id', _session_id));
    END IF;
    RETURN genesis_session_json(_session);
END;
$$;
