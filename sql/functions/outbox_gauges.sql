-- The outbox gauges (relay and API /metrics) at a cost that does not grow with the backlog (issue 22):
-- outbox_stats() reads every unfinished row (0.83 s at 1.2 M PENDING rows), so in an outage its
-- refresh timed out and the gauges vanished when they mattered most. Here every count is an index
-- range bounded by `_exact_up_to` or by what relays hold, and above that the backlog is estimated:
--   pending: exact up to `_exact_up_to`; above, estimated from `_sample` ids drawn at random across
--            the range of PENDING ids (one per equal slice, each looked up by primary key): the
--            range's size × the share of them PENDING, within about ±2 % of the range at 2,000;
--            `pending_estimated` says which it is
--   claimed: PENDING rows in the held ranges of live leases (few: relays × batches in flight), exact
--   retrying: heads waiting for (or making) a retry: the retried row is its key's head, exact
--   blocked: PENDING rows behind a FAILED or retrying row of their session, counted up to
--            `_exact_up_to` per session (`blocked_estimated`: a session had more; the sum is then a floor)
--   blocked_sessions: sessions with a FAILED row, or a retrying head with rows behind it, exact
--   failed: FAILED rows, by their partial index (migration 0007), exact
--   oldest_pending_age_seconds: age of the PENDING row with the lowest id (ids follow commit order
--            within a session and nearly so across them)
-- outbox_stats() stays the exact count (`genesis outbox stats`), for when the scan is worth it.
CREATE OR REPLACE FUNCTION outbox_gauges(_exact_up_to integer DEFAULT 10000, _sample integer DEFAULT 2000)
RETURNS TABLE (pending bigint, claimed bigint, retrying bigint, blocked bigint, blocked_sessions bigint,
               failed bigint, oldest_pending_age_seconds double precision,
               pending_estimated boolean, blocked_estimated boolean)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    _lo bigint;
    _hi bigint;
    _oldest timestamptz;
    _hits bigint;
BEGIN
    -- The oldest PENDING row: the first entry of the partial PENDING index.
    SELECT o.id, o.created_at INTO _lo, _oldest
      FROM event_outbox o WHERE o.status = 'PENDING' ORDER BY o.id LIMIT 1;
    oldest_pending_age_seconds := coalesce(extract(epoch FROM now() - _oldest), 0)::float8;

    SELECT count(*) INTO pending  -- in id order: the planner then walks the PENDING index, never the table
      FROM (SELECT 1 FROM event_outbox o WHERE o.status = 'PENDING' ORDER BY o.id LIMIT _exact_up_to + 1) p;
    pending_estimated := pending > _exact_up_to;
    IF pending_estimated THEN
        SELECT max(o.id) INTO _hi FROM event_outbox o;
        SELECT count(*) INTO _hits
          FROM event_outbox o
         WHERE o.id = ANY (ARRAY(SELECT _lo + floor((s.n + random()) * (_hi - _lo + 1) / _sample)::bigint
                                   FROM generate_series(0, _sample - 1) AS s(n)))
           AND o.status = 'PENDING';
        pending := greatest(_exact_up_to + 1, round((_hi - _lo + 1)::numeric * _hits / _sample))::bigint;
    END IF;

    -- Heads due later than now are leased or waiting for a retry: a range of idx_outbox_heads_due
    -- for each value of its leading column; the rows of the leased ones are those they hold.
    SELECT coalesce(sum(c.rows), 0) INTO claimed
      FROM outbox_heads h
     CROSS JOIN LATERAL (SELECT count(*) AS rows FROM event_outbox o
                          WHERE o.key = h.key AND o.id BETWEEN h.held_from AND h.held_to AND o.status = 'PENDING') c
     WHERE NOT h.blocked AND h.retry IN (false, true) AND h.due_at > now() AND h.claim_token IS NOT NULL;
    SELECT count(*) INTO retrying FROM outbox_heads h WHERE NOT h.blocked AND h.retry;

    -- What holds a session back: a FAILED row, or its head waiting for a retry; then the PENDING
    -- rows behind the first of them, each session's counted up to the cap.
    WITH holders AS (
        SELECT o.key, o.id, true AS failed FROM event_outbox o WHERE o.status = 'FAILED'
        UNION ALL
        SELECT h.key, h.head_id, false FROM outbox_heads h WHERE NOT h.blocked AND h.retry),
    first AS (
        SELECT k.key, min(k.id) AS first_id, bool_or(k.failed) AS failed FROM holders k GROUP BY k.key)
    SELECT coalesce(sum(least(b.rows, _exact_up_to)), 0), count(*) FILTER (WHERE b.rows > 0 OR f.failed),
           coalesce(bool_or(b.rows > _exact_up_to), false)
      INTO blocked, blocked_sessions, blocked_estimated
      FROM first f
     CROSS JOIN LATERAL (SELECT count(*) AS rows
                           FROM (SELECT 1 FROM event_outbox o
                                  WHERE o.key = f.key AND o.id > f.first_id AND o.status = 'PENDING'
                                  LIMIT _exact_up_to + 1) r) b;

    SELECT count(*) INTO failed FROM event_outbox o WHERE o.status = 'FAILED';
    RETURN NEXT;
END;
$$;
