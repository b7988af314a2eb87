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
    _command_id uuid := gen_random_uuid();
    _event_id uuid := gen_random_uuid();
BEGIN
    IF _user_id IS NULL OR btrim(_user_id) = '' THEN
        PERFORM genesis_refuse('GS423', 'user_id is required',
                               jsonb_build_object('fields', jsonb_build_object('user_id', 'required')));
    END IF;

    -- Written once, already at version 1 with its first event: that event is recorded just below.
    INSERT INTO genesis_sessions (user_id, version, last_event_id) VALUES (_user_id, 1, _event_id)
    RETURNING * INTO _session;
    INSERT INTO command_inbox (id, session_id, user_id, command_type, status, request_id, completed_at)
    VALUES (_command_id, _session.id, _user_id, 'CreateSession', 'COMPLETED', _request_id, now());
    PERFORM genesis_record_event(_session.id, 1, NULL, _event_id, 'Genesis.Session.Created',
                                 jsonb_build_object('user_id', _user_id, 'stage', _session.stage),
                                 _command_id, _user_id, _request_id, _traceparent, _tracestate);
    RETURN genesis_session_json(_session);
END;
$$;
