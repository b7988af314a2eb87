-- A resume handle as the wait route answers it (and a psql caller of park_flow reads it).
CREATE OR REPLACE FUNCTION flow_handle_json(_h flow_resume_handles)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'handle_id', _h.id, 'correlation_id', _h.correlation_id, 'session_id', _h.session_id,
        'status', _h.status, 'expects', to_jsonb(_h.expects), 'timeout_seconds', _h.timeout_seconds,
        'expires_at', _h.expires_at, 'resume_handle', _h.resume_handle, 'resume_payload', _h.resume_payload,
        'resumed_by', _h.resumed_by, 'resumed_at', _h.resumed_at)
$$;
