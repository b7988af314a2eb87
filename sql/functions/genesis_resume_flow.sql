-- Called by submit_command, under its lock on the session row: resumes the session's open handle that
-- expects `_command_type` (the oldest, if several flows wait for it), with the command's payload as
-- the user's answer. Returns the event metadata's `resumes` ({"handle_id", "correlation_id",
-- "resume_handle"}), or NULL when no flow was waiting for this command. A refusal later in submit_command
-- rolls this back with the rest: the handle stays PAUSED.
CREATE OR REPLACE FUNCTION genesis_resume_flow(_session_id uuid, _command_type text, _command_id uuid,
                                               _payload jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _handle flow_resume_handles;
BEGIN
    UPDATE flow_resume_handles h
       SET status = 'RESUMED', resume_payload = _payload, resumed_by = _command_id, resumed_at = now(),
           updated_at = now()
     WHERE h.id = (SELECT o.id FROM flow_resume_handles o
                    WHERE o.session_id = _session_id AND o.status IN ('PENDING_PAUSE', 'PAUSED')
                      AND _command_type = ANY (o.expects) AND o.expires_at > now()
                    ORDER BY o.created_at, o.id LIMIT 1 FOR UPDATE)
    RETURNING * INTO _handle;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN jsonb_build_object('handle_id', _handle.id, 'correlation_id', _handle.correlation_id,
                              'resume_handle', _handle.resume_handle);
END;
$$;
