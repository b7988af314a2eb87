-- The session as the API shows it.
CREATE OR REPLACE FUNCTION genesis_session_json(_s genesis_sessions)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', _s.id, 'user_id', _s.user_id, 'status', _s.status, 'stage', _s.stage,
        'stage_data', _s.stage_data, 'version', _s.version,
        'created_at', _s.created_at, 'updated_at', _s.updated_at)
$$;
