-- Deletes up to `_max_rows` SENT rows older than `_older_than` (the events stay in
-- domain_events). Callers loop until it returns less than `_max_rows`.
CREATE OR REPLACE FUNCTION prune_outbox(_older_than interval, _max_rows integer DEFAULT 10000)
RETURNS integer
LANGUAGE sql VOLATILE AS $$
    WITH pruned AS (
        DELETE FROM event_outbox o
         WHERE o.id IN (SELECT s.id FROM event_outbox s
                         WHERE s.status = 'SENT' AND s.sent_at < now() - _older_than
                         ORDER BY s.sent_at LIMIT _max_rows)
        RETURNING 1)
    SELECT count(*)::integer FROM pruned
$$;
