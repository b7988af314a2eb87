-- Records one event of a session whose row the caller has locked and updates itself (version and
-- last_event_id, once per command however many events it records): the event row, its outbox row and the
-- wake-up NOTIFYs (delivered at commit), in one statement. The caller gives the event's id, its
-- aggregate_version and its causation (the session's previous event), so the session row is written once.
-- The outbox headers are the record's Kafka headers as they will be sent: ours, the CloudEvents 1.0
-- Kafka binding (binary mode; the value is the event JSON) and the W3C trace context of the request
-- that caused the event, kept in the same transaction so the relay only copies them.
-- `_metadata` is merged into the event's metadata (submit_command's `resumes`: the flow the command resumed);
-- events are immutable once written, so it must come here rather than be added afterwards.
-- The signature before `_metadata`: dropped so calls naming only the old arguments are not ambiguous.
DROP FUNCTION IF EXISTS genesis_record_event(uuid, integer, uuid, uuid, text, jsonb, uuid, text, text, text, text);
CREATE OR REPLACE FUNCTION genesis_record_event(
    _session_id uuid, _version integer, _causation_id uuid, _event_id uuid, _event_type text, _payload jsonb,
    _correlation_id uuid, _user_id text, _request_id text, _traceparent text DEFAULT NULL,
    _tracestate text DEFAULT NULL, _metadata jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    -- Only what came: an absent trace context is no header at all, not an empty one.
    _trace jsonb := CASE WHEN _traceparent IS NULL AND _tracestate IS NULL THEN '{}'::jsonb
                         ELSE jsonb_strip_nulls(jsonb_build_object('traceparent', _traceparent,
                                                                   'tracestate', _tracestate)) END;
BEGIN
    WITH e AS (
        INSERT INTO domain_events (event_id, correlation_id, causation_id, event_type, aggregate_id,
                                   aggregate_version, payload, metadata)
        VALUES (_event_id, _correlation_id, _causation_id, _event_type, _session_id, _version,
                coalesce(_payload, '{}'::jsonb),
                jsonb_build_object(
                    'user_id', _user_id,
                    'source_service', coalesce(nullif(current_setting('application_name', true), ''), 'sql'),
                    'request_id', _request_id,
                    'timestamp', now()) || _trace || coalesce(_metadata, '{}'::jsonb))
        RETURNING *)
    INSERT INTO event_outbox (event_id, topic, key, payload, headers)
    SELECT e.event_id, coalesce(nullif(current_setting('genesis.kafka_topic', true), ''), 'domain-events'),
           _session_id::text, genesis_event_json(e::domain_events), genesis_event_headers(e::domain_events)
      FROM e;

    -- Hints only (identical payloads fold into one per transaction); readers re-read the tables.
    -- Inside submit_commands (genesis.batch on) the batch notifies once for all its commands.
    IF current_setting('genesis.batch', true) IS DISTINCT FROM 'on' THEN
        PERFORM pg_notify('genesis_outbox_v1', '');
        PERFORM pg_notify('genesis_events_v1', _session_id::text);
    END IF;
END;
$$;
