-- Expires one open resume handle past `expires_at`, with its Genesis.Session.Flow.Failed event (reason EXPIRED)
-- through the outbox. The caller holds the handle's session row lock (expire_flow_handles, park_flow), so a command
-- cannot resume it meanwhile. Returns whether it expired it (false: not open, or not due).
CREATE OR REPLACE FUNCTION genesis_expire_flow_handle(_handle_id uuid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _handle flow_resume_handles;
    _user_id text;
BEGIN
    UPDATE flow_resume_handles h SET status = 'EXPIRED', updated_at = now()
     WHERE h.id = _handle_id AND h.status IN ('PENDING_PAUSE', 'PAUSED') AND h.expires_at <= now()
    RETURNING * INTO _handle;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    SELECT s.user_id INTO _user_id FROM genesis_sessions s WHERE s.id = _handle.session_id;
    PERFORM genesis_append_event(_handle.session_id, 'Genesis.Session.Flow.Failed',
        jsonb_build_object('correlation_id', _handle.correlation_id, 'handle_id', _handle.id, 'reason', 'EXPIRED'),
        _handle.correlation_id, _user_id, NULL);
    RETURN true;
END;
$$;
