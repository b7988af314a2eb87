-- The session as the API (and a psql caller of get_session) shows it: its row, and what is in flight.
-- One key per line below: a new part of the session (e.g. open resume handles) is one more pair.
-- pending_commands reads the partial unique index idx_command_inbox_unique_pending_command
-- (session_id, command_type) WHERE status IN ('RECEIVED', 'PROCESSING'): a probe of the few pending rows
-- of this session, never of its settled history.
CREATE OR REPLACE FUNCTION genesis_session_json(_s genesis_sessions)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', _s.id, 'user_id', _s.user_id, 'status', _s.status, 'stage', _s.stage,
        'stage_data', _s.stage_data, 'version', _s.version,
        'created_at', _s.created_at, 'updated_at', _s.updated_at,
        'is_pending', _pending.commands <> '[]'::jsonb,
        'pending_commands', _pending.commands,
        'waiting', (SELECT coalesce(jsonb_agg(jsonb_build_object('handle_id', h.id, 'correlation_id', h.correlation_id,
                                                                 'expects', to_jsonb(h.expects),
                                                                 'expires_at', h.expires_at, 'status', h.status)
                                              ORDER BY h.created_at, h.id), '[]'::jsonb)
                      FROM flow_resume_handles h
                     WHERE h.session_id = _s.id AND h.status IN ('PENDING_PAUSE', 'PAUSED')
                       -- What a command can still resume: not past its time, in a session that takes commands.
                       AND h.expires_at > now() AND _s.status = 'IN_PROGRESS'))
      FROM (SELECT coalesce(jsonb_agg(jsonb_build_object('id', c.id, 'type', c.command_type)
                                      ORDER BY c.created_at, c.id), '[]'::jsonb) AS commands
              FROM command_inbox c
             WHERE c.session_id = _s.id AND c.status IN ('RECEIVED', 'PROCESSING')) AS _pending
$$;
