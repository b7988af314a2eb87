-- An event's Kafka record headers (CONTRACT §6): ours, the CloudEvents 1.0 Kafka binding in binary
-- mode, and the W3C trace context the event's metadata kept. One definition for whoever builds a
-- record: today genesis_record_event stores them in the outbox row; a relay could derive them instead.
CREATE OR REPLACE FUNCTION genesis_event_headers(_e domain_events)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'event_id', _e.event_id, 'event_type', _e.event_type,
        'correlation_id', _e.correlation_id, 'causation_id', _e.causation_id,
        'ce_specversion', '1.0', 'ce_id', _e.event_id,
        'ce_source', coalesce(nullif(current_setting('genesis.cloudevents_source', true), ''),
                              '/infinitescribe/genesis'),
        'ce_type', _e.event_type, 'ce_subject', _e.aggregate_id,
        -- RFC 3339 in UTC whatever the session's TimeZone: the same instant as created_at.
        'ce_time', to_char(_e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'content-type', 'application/json')
        || jsonb_strip_nulls(jsonb_build_object('traceparent', _e.metadata -> 'traceparent',
                                                'tracestate', _e.metadata -> 'tracestate'))
$$;
