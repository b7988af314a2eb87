-- Appends one event of a session whose row the caller has locked: the event, its outbox row,
-- the session's version and newest event, and the wake-up NOTIFYs (delivered at commit).
CREATE OR REPLACE FUNCTION genesis_append_event(
    _session_id uuid, _event_type text, _payload jsonb, _correlation_id uuid,
    _user_id text, _request_id text)
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

    INSERT INTO domain_events (event_id, correlation_id, causation_id, event_type, aggregate_id,
                               aggregate_version, payload, metadata)
    VALUES (_event_id, _correlation_id, _causation_id, _event_type, _session_id, _version,
            coalesce(_payload, '{}'::jsonb),
            jsonb_build_object(
                'user_id', _user_id,
                'source_service', coalesce(nullif(current_setting('application_name', true), ''), 'sql'),
                'request_id', _request_id,
                'timestamp', now()))
    RETURNING * INTO _event;

    INSERT INTO event_outbox (event_id, topic, key, payload, headers)
    VALUES (_event.event_id,
            coalesce(nullif(current_setting('genesis.kafka_topic', true), ''), 'domain-events'),
            _session_id::text,
            genesis_event_json(_event),
            jsonb_build_object('event_id', _event.event_id, 'event_type', _event.event_type,
                               'correlation_id', _event.correlation_id,
                               'causation_id', _event.causation_id));

    -- Hints only (identical payloads fold into one per transaction); readers re-read the tables.
    PERFORM pg_notify('genesis_outbox_v1', '');
    PERFORM pg_notify('genesis_events_v1', _session_id::text);
    RETURN _event;
END;
$$;
