-- Genesis command service: the six tables of CONTRACT.md section 2.
-- Tables change only through numbered migrations; functions live in sql/functions and are
-- re-installed on every `genesis migrate`.

CREATE TABLE genesis_sessions (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        text NOT NULL CONSTRAINT genesis_sessions_user_id_not_empty CHECK (user_id <> ''),
    status         text NOT NULL DEFAULT 'IN_PROGRESS'
                   CONSTRAINT genesis_sessions_status_check
                   CHECK (status IN ('IN_PROGRESS', 'COMPLETED', 'ABANDONED')),
    stage          text NOT NULL DEFAULT 'CONCEPT_SELECTION'
                   CONSTRAINT genesis_sessions_stage_check
                   CHECK (stage IN ('CONCEPT_SELECTION', 'STORY_CONCEPTION', 'WORLDVIEW',
                                    'CHARACTERS', 'PLOT_OUTLINE', 'FINISHED')),
    -- confirmed data per stage: {"CONCEPT_SELECTION": {...}, ...}
    stage_data     jsonb NOT NULL DEFAULT '{}'::jsonb
                   CONSTRAINT genesis_sessions_stage_data_object CHECK (jsonb_typeof(stage_data) = 'object'),
    version        integer NOT NULL DEFAULT 0 CONSTRAINT genesis_sessions_version_check CHECK (version >= 0),
    -- the session's newest event: the causation of the next one, without a scan
    last_event_id  uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_genesis_sessions_user ON genesis_sessions (user_id, created_at);

CREATE TABLE command_inbox (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id       uuid NOT NULL REFERENCES genesis_sessions (id),
    user_id          text NOT NULL,
    command_type     text NOT NULL,
    idempotency_key  text CONSTRAINT command_inbox_idempotency_key_length
                     CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 255),
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    status           text NOT NULL DEFAULT 'RECEIVED'
                     CONSTRAINT command_inbox_status_check
                     CHECK (status IN ('RECEIVED', 'PROCESSING', 'COMPLETED', 'FAILED')),
    error            text,
    result           jsonb,
    -- what submit_command answered first, so an Idempotency-Key replay answers the same
    reply            jsonb,
    request_id       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz
);
-- The duplicate guard: one pending command of a type per session, enforced by the index itself.
CREATE UNIQUE INDEX idx_command_inbox_unique_pending_command
    ON command_inbox (session_id, command_type) WHERE status IN ('RECEIVED', 'PROCESSING');
CREATE UNIQUE INDEX idx_command_inbox_idempotency_key
    ON command_inbox (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The stale-command sweep reads only pending rows.
CREATE INDEX idx_command_inbox_pending_age
    ON command_inbox (created_at) WHERE status IN ('RECEIVED', 'PROCESSING');

CREATE TABLE domain_events (
    id                 bigserial PRIMARY KEY,
    event_id           uuid NOT NULL DEFAULT gen_random_uuid() CONSTRAINT domain_events_event_id_key UNIQUE,
    correlation_id     uuid,
    causation_id       uuid,
    event_type         text NOT NULL
                       CONSTRAINT domain_events_event_type_format CHECK (event_type ~
                           '^[A-Z][A-Za-z0-9]*\.[A-Z][A-Za-z0-9]*(\.[A-Z][A-Za-z0-9]*)?\.([A-Z][A-Za-z0-9]*)?(Requested|Created|Proposed|Submitted|Confirmed|Updated|Revised|Completed|Finished|Failed)$'),
    event_version      integer NOT NULL DEFAULT 1 CONSTRAINT domain_events_event_version_check CHECK (event_version >= 1),
    aggregate_type     text NOT NULL DEFAULT 'GENESIS_SESSION'
                       CONSTRAINT domain_events_aggregate_type_check CHECK (aggregate_type IN ('GENESIS_SESSION')),
    aggregate_id       uuid NOT NULL,
    aggregate_version  integer NOT NULL CONSTRAINT domain_events_aggregate_version_check CHECK (aggregate_version >= 1),
    payload            jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata           jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT domain_events_aggregate_version_key UNIQUE (aggregate_id, aggregate_version)
);
CREATE INDEX idx_domain_events_aggregate_seq ON domain_events (aggregate_id, id);
CREATE INDEX idx_domain_events_correlation ON domain_events (correlation_id);

-- The event store is append-only: no UPDATE, DELETE or TRUNCATE, whoever asks.
CREATE FUNCTION domain_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'domain_events is append-only: % refused', TG_OP
        USING ERRCODE = 'GS501', HINT = 'append a new event instead';
END;
$$;
CREATE TRIGGER domain_events_immutable
    BEFORE UPDATE OR DELETE ON domain_events
    FOR EACH ROW EXECUTE FUNCTION domain_events_refuse_change();
CREATE TRIGGER domain_events_no_truncate
    BEFORE TRUNCATE ON domain_events
    FOR EACH STATEMENT EXECUTE FUNCTION domain_events_refuse_change();

CREATE TABLE event_outbox (
    id             bigserial PRIMARY KEY,
    event_id       uuid NOT NULL REFERENCES domain_events (event_id),
    topic          text NOT NULL CONSTRAINT event_outbox_topic_not_empty CHECK (topic <> ''),
    key            text NOT NULL,
    payload        jsonb NOT NULL,
    headers        jsonb NOT NULL DEFAULT '{}'::jsonb,
    status         text NOT NULL DEFAULT 'PENDING'
                   CONSTRAINT event_outbox_status_check CHECK (status IN ('PENDING', 'SENT', 'FAILED', 'DISCARDED')),
    attempts       integer NOT NULL DEFAULT 0 CONSTRAINT event_outbox_attempts_check CHECK (attempts >= 0),
    last_error     text,
    -- fencing: a claim is a token plus a lease; only the holder of the current token may settle the row
    claim_token    uuid,
    claimed_until  timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    sent_at        timestamptz,
    failed_at      timestamptz,
    CONSTRAINT event_outbox_sent_has_time CHECK (status <> 'SENT' OR sent_at IS NOT NULL),
    CONSTRAINT event_outbox_failed_has_error CHECK (status <> 'FAILED' OR (failed_at IS NOT NULL AND last_error IS NOT NULL))
);
CREATE UNIQUE INDEX idx_event_outbox_event ON event_outbox (event_id);
-- Claiming and per-key ordering only ever look at unfinished rows: partial indexes stay small
-- however many millions of SENT rows the table holds.
CREATE INDEX idx_event_outbox_pending ON event_outbox (id) WHERE status = 'PENDING';
CREATE INDEX idx_event_outbox_unfinished_key ON event_outbox (key, id) WHERE status IN ('PENDING', 'FAILED');
CREATE INDEX idx_event_outbox_sent_at ON event_outbox (sent_at) WHERE status = 'SENT';

CREATE TABLE async_tasks (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    command_id    uuid NOT NULL REFERENCES command_inbox (id) CONSTRAINT async_tasks_command_id_key UNIQUE,
    session_id    uuid NOT NULL REFERENCES genesis_sessions (id),
    task_type     text NOT NULL,
    status        text NOT NULL DEFAULT 'PENDING'
                  CONSTRAINT async_tasks_status_check CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED')),
    input         jsonb NOT NULL DEFAULT '{}'::jsonb,
    result        jsonb,
    error         text,
    progress      integer NOT NULL DEFAULT 0 CONSTRAINT async_tasks_progress_check CHECK (progress BETWEEN 0 AND 100),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz
);
CREATE INDEX idx_async_tasks_session ON async_tasks (session_id);
CREATE INDEX idx_async_tasks_open ON async_tasks (created_at) WHERE status IN ('PENDING', 'RUNNING');

CREATE TABLE flow_resume_handles (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    correlation_id  uuid NOT NULL,
    session_id      uuid NOT NULL REFERENCES genesis_sessions (id),
    status          text NOT NULL DEFAULT 'WAITING'
                    CONSTRAINT flow_resume_handles_status_check
                    CHECK (status IN ('WAITING', 'RESUMED', 'EXPIRED', 'CANCELLED')),
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    resumed_at      timestamptz
);
CREATE UNIQUE INDEX idx_flow_resume_handles_waiting
    ON flow_resume_handles (correlation_id) WHERE status = 'WAITING';
CREATE INDEX idx_flow_resume_handles_session ON flow_resume_handles (session_id);
