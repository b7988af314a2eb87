-- What operators and the metrics endpoint watch. Reads only unfinished rows (partial indexes).
--   blocked: PENDING rows held behind an earlier FAILED row or one that is being retried
CREATE OR REPLACE FUNCTION outbox_stats()
RETURNS TABLE (pending bigint, claimed bigint, retrying bigint, blocked bigint, blocked_sessions bigint,
               failed bigint, oldest_pending_age_seconds double precision)
LANGUAGE sql STABLE AS $$
    WITH open_rows AS (
        SELECT o.id, o.key, o.status, o.attempts, o.created_at
          FROM event_outbox o WHERE o.status IN ('PENDING', 'FAILED')
    ), holders AS (
        SELECT h.key, min(h.id) AS first_id FROM open_rows h
         WHERE h.status = 'FAILED' OR h.attempts > 0 GROUP BY h.key
    )
    SELECT count(*) FILTER (WHERE r.status = 'PENDING'),
           count(*) FILTER (WHERE r.status = 'PENDING' AND l.due_at > now() AND r.id BETWEEN l.held_from AND l.held_to),
           count(*) FILTER (WHERE r.status = 'PENDING' AND r.attempts > 0),
           count(*) FILTER (WHERE r.status = 'PENDING' AND r.id > h.first_id),
           count(DISTINCT r.key) FILTER (WHERE r.id > h.first_id OR (r.status = 'FAILED')),
           count(*) FILTER (WHERE r.status = 'FAILED'),
           coalesce(extract(epoch FROM now() - min(r.created_at) FILTER (WHERE r.status = 'PENDING')), 0)::float8
      FROM open_rows r LEFT JOIN holders h ON h.key = r.key
      LEFT JOIN outbox_heads l ON l.key = r.key AND l.claim_token IS NOT NULL  -- leased keys (claim_outbox)
$$;
