-- flow_resume_handles to CONTRACT §2's shape (issue 25): a flow parks on it (park_flow), the user's next
-- expected command resumes it (genesis_resume_flow, inside submit_command), the relays' sweep expires it
-- (expire_flow_handles). Upgrades in place: the old statuses map WAITING -> PAUSED, CANCELLED -> EXPIRED,
-- and the old `payload` becomes the `resume_handle`.
DROP INDEX IF EXISTS idx_flow_resume_handles_waiting;
ALTER TABLE flow_resume_handles DROP CONSTRAINT flow_resume_handles_status_check;
ALTER TABLE flow_resume_handles RENAME COLUMN payload TO resume_handle;
UPDATE flow_resume_handles SET status = CASE status WHEN 'WAITING' THEN 'PAUSED' WHEN 'CANCELLED' THEN 'EXPIRED'
                                                    ELSE status END;
ALTER TABLE flow_resume_handles
    ALTER COLUMN status SET DEFAULT 'PAUSED',
    ADD CONSTRAINT flow_resume_handles_status_check
        CHECK (status IN ('PENDING_PAUSE', 'PAUSED', 'RESUMED', 'EXPIRED')),
    ADD COLUMN expects text[] NOT NULL DEFAULT '{}',
    ADD COLUMN resume_payload jsonb,
    ADD COLUMN resumed_by uuid,
    -- Old rows had no timeout of their own: the time they were given is the closest figure.
    ADD COLUMN timeout_seconds integer,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
UPDATE flow_resume_handles
   SET timeout_seconds = greatest(1, ceil(extract(epoch FROM expires_at - created_at)))::integer;
ALTER TABLE flow_resume_handles
    ALTER COLUMN timeout_seconds SET NOT NULL,
    ADD CONSTRAINT flow_resume_handles_timeout_check CHECK (timeout_seconds BETWEEN 1 AND 604800);
-- One open handle per flow: the guard against two parks at once is this index, not a read-then-write check.
CREATE UNIQUE INDEX idx_flow_resume_handles_open
    ON flow_resume_handles (correlation_id) WHERE status IN ('PENDING_PAUSE', 'PAUSED');
-- A command resumes at most one handle; the race path (resume before the pause) looks commands up here.
CREATE UNIQUE INDEX idx_flow_resume_handles_resumed_by ON flow_resume_handles (resumed_by)
    WHERE resumed_by IS NOT NULL;
-- The sweep's probe: open handles by deadline.
CREATE INDEX idx_flow_resume_handles_expiry ON flow_resume_handles (expires_at)
    WHERE status IN ('PENDING_PAUSE', 'PAUSED');
