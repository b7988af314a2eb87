-- A page of a session's events after `_after` (a sequence), oldest first, for its owner. Each event
-- carries `kafka`: where its record landed ({partition, offset}) once the relay has SENT it, else null
-- (also null once `genesis outbox prune` has removed the row).
CREATE OR REPLACE FUNCTION session_events(_session_id uuid, _user_id text, _after bigint, _limit integer)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    _events jsonb;
BEGIN
    PERFORM get_session(_session_id, _user_id);
    SELECT coalesce(jsonb_agg(genesis_event_json(e) || jsonb_build_object('kafka',
               (SELECT jsonb_build_object('partition', o.kafka_partition, 'offset', o.kafka_offset)
                  FROM event_outbox o
                 WHERE o.event_id = e.event_id AND o.status = 'SENT' AND o.kafka_offset IS NOT NULL))
               ORDER BY e.id), '[]'::jsonb) INTO _events
      FROM (SELECT * FROM domain_events d
             WHERE d.aggregate_id = _session_id AND d.id > _after
             ORDER BY d.id LIMIT _limit) e;
    RETURN jsonb_build_object(
        'events', _events,
        'next_after', coalesce((_events -> -1 ->> 'sequence')::bigint, _after));
END;
$$;
