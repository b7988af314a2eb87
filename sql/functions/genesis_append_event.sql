-- Appends one event of a session whose row the caller has locked: the session's version and newest
-- event, then the event with its outbox row (genesis_record_event). For writers of one event now and
-- then (complete_command, expire_stale_commands); submit_command and create_session call
-- genesis_record_event themselves and write the session row once per command.
-- The signature before the trailing parameters were added: a second function beside this one would make
-- calls that name only the old arguments ambiguous. Dropped in the same transaction that creates this one.
DROP FUNCTION IF EXISTS genesis_append_event(uuid, text, jsonb, uuid, text, text);
CREATE OR REPLACE FUNCTION genesis_append_event(
    _session_id uuid, _event_type text, _payload jsonb, _correlation_id uuid,
    _user_id text, _request_id text, _traceparent text DEFAULT NULL, _tracestate text DEFAULT NULL)
RETURNS domain_events
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _event_id uuid := gen_random_uuid();
    _causation_id uuid;
    _version integer;
    _event domain_events;
BEGIN
    SELECT s.last_event_id, s.version + 1 INTO _causation_id, _version
      FROM genesis_sessions s WHERE s.id = _session_id;
    UPDATE genesis_sessions s
       SET version = _version, last_event_id = _event_id, updated_at = now()
     WHERE s.id = _session_id;
    PERFORM genesis_record_event(_session_id, _version, _causation_id, _event_id, _event_type, _payload,
                                 _correlation_id, _user_id, _request_id, _traceparent, _tracestate);
    SELECT * INTO _event FROM domain_events e WHERE e.event_id = _event_id;
    RETURN _event;
END;
$$;
