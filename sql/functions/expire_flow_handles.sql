-- The relays' sweep (beside expire_stale_commands): open resume handles past `expires_at` become EXPIRED,
-- each with a Genesis.Session.Flow.Failed event (reason EXPIRED) through the outbox. Returns how many.
-- Lock order as every writer: the candidates' sessions first, by id, then each handle under its session's
-- lock, re-checked there (a command may have resumed it meanwhile).
CREATE OR REPLACE FUNCTION expire_flow_handles(_max_rows integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _candidates uuid[];
    _candidate record;
    _expired integer := 0;
BEGIN
    SELECT array_agg(h.id) INTO _candidates
      FROM (SELECT h.id FROM flow_resume_handles h
             WHERE h.status IN ('PENDING_PAUSE', 'PAUSED') AND h.expires_at <= now()
             ORDER BY h.expires_at LIMIT _max_rows) h;
    IF _candidates IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM genesis_sessions s
     WHERE s.id IN (SELECT h.session_id FROM flow_resume_handles h WHERE h.id = ANY (_candidates))
     ORDER BY s.id FOR UPDATE;
    FOR _candidate IN
        SELECT h.id FROM flow_resume_handles h WHERE h.id = ANY (_candidates) ORDER BY h.session_id, h.id
    LOOP
        IF genesis_expire_flow_handle(_candidate.id) THEN  -- re-checked under the lock: it may be resumed by now
            _expired := _expired + 1;
        END IF;
    END LOOP;
    RETURN _expired;
END;
$$;
