-- Appends one event of a session whose row the caller has locked: the event, its outbox row,
-- the session's version and newest event, and the wake-up NOTIFYs (delivered at commit).
-- The outbox headers are the record's Kafka headers as they will be sent: ours, the CloudEvents 1.0
-- Kafka binding (binary mode; the value is the event JSON) and the W3C trace context of the request
-- that caused the event, kept in the same transaction so the relay only copies them.
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
    -- Only what came: an absent trace context is no header at all, not an empty one.
    _trace jsonb := jsonb_strip_nulls(jsonb_build_object('traceparent', _traceparent, 'tracestate', _tracestate));
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
                'timestamp', now()) || _trace)
    RETURNING * INTO _event;

    INSERT INTO event_outbox (event_id, topic, key, payload, headers)
    VALUES (_event.event_id,
            coalesce(nullif(current_setting('genesis.kafka_topic', true), ''), 'domain-events'),
            _session_id::text,
            genesis_event_json(_event),
            jsonb_build_object('event_id', _event.event_id, 'event_type', _event.event_type,
                               'correlation_id', _event.correlation_id,
                               'causation_id', _event.causation_id,
                               'ce_specversion', '1.0',
                               'ce_id', _event.event_id,
                               'ce_source', coalesce(nullif(current_setting('genesis.cloudevents_source', true), ''),
                                                     '/infinitescribe/genesis'),
                               'ce_type', _event.event_type,
                               'ce_subject', _session_id,
                               -- RFC 3339 in UTC whatever the session's TimeZone: the same instant as created_at.
                               'ce_time', to_char(_event.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                               'content-type', 'application/json') || _trace);

    -- Hints only (identical payloads fold into one per transaction); readers re-read the tables.
    PERFORM pg_notify('genesis_outbox_v1', '');
    PERFORM pg_notify('genesis_events_v1', _session_id::text);
    RETURN _event;
END;
$$;
