-- Creates a session for `_user_id` and records Genesis.Session.Created (with its inbox and
-- outbox rows) in the caller's transaction.
-- The signature before the trailing parameters were added: a second function beside this one would make
-- calls that name only the old arguments ambiguous. Dropped in the same transaction that creates this one.
DROP FUNCTION IF EXISTS create_session(text, text);
CREATE OR REPLACE FUNCTION create_session(_user_id text, _request_id text DEFAULT NULL,
                                          _traceparent text DEFAULT NULL, _tracestate text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _session genesis_sessions;
    _command_id uuid;
BEGIN
    IF _user_id IS NULL OR btrim(_user_id) = '' THEN
        PERFORM genesis_refuse('GS423', 'user_id is required',
                               jsonb_build_object('fields', jsonb_build_object('user_id', 'required')));
    END IF;

    INSERT INTO genesis_sessions (user_id) VALUES (_user_id) RETURNING * INTO _session;
    INSERT INTO command_inbox (session_id, user_id, command_type, status, request_id, completed_at)
    VALUES (_session.id, _user_id, 'CreateSession', 'COMPLETED', _request_id, now())
    RETURNING id INTO _command_id;
    PERFORM genesis_append_event(_session.id, 'Genesis.Session.Created',
                                 jsonb_build_object('user_id', _user_id, 'stage', _session.stage),
                                 _command_id, _user_id, _request_id, _traceparent, _tracestate);

    SELECT * INTO _session FROM genesis_sessions s WHERE s.id = _session.id;
    RETURN genesis_session_json(_session);
END;
$$;
