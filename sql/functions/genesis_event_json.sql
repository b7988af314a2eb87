-- An event as consumers see it (Kafka value, events API, SSE data): every column, with the
-- global order as `sequence`.
CREATE OR REPLACE FUNCTION genesis_event_json(_e domain_events)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'sequence', _e.id, 'event_id', _e.event_id, 'correlation_id', _e.correlation_id,
        'causation_id', _e.causation_id, 'event_type', _e.event_type, 'event_version', _e.event_version,
        'aggregate_type', _e.aggregate_type, 'aggregate_id', _e.aggregate_id,
        'aggregate_version', _e.aggregate_version, 'payload', _e.payload, 'metadata', _e.metadata,
        'created_at', _e.created_at)
$$;
