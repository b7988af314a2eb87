-- Records a command, the event(s) it causes and their outbox rows in the caller's transaction,
-- after locking the session and checking every rule. Refusals raise a GS4xx SQLSTATE (detail:
-- JSON fields for the error body), so a refused command leaves nothing behind.
-- The API calls it through submit_commands (group commit, READ COMMITTED); from psql it is just
--   SELECT * FROM submit_command('<session>', 'ConfirmStage', '{"stage": "..."}', '<user>');
-- The signature before the trailing parameters were added: a second function beside this one would make
-- calls that name only the old arguments ambiguous. Dropped in the same transaction that creates this one.
DROP FUNCTION IF EXISTS submit_command(uuid, text, jsonb, text, text, text);
CREATE OR REPLACE FUNCTION submit_command(
    _session_id uuid, _command_type text, _payload jsonb, _user_id text,
    _idempotency_key text DEFAULT NULL, _request_id text DEFAULT NULL,
    _traceparent text DEFAULT NULL, _tracestate text DEFAULT NULL)
RETURNS TABLE (command_id uuid, command_status text, is_async boolean, replayed boolean,
               event_ids uuid[], session jsonb)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    _rule record;
    _session genesis_sessions;
    _earlier command_inbox;
    _command_id uuid := gen_random_uuid();
    _status text;
    _before genesis_sessions;
    _event_ids uuid[];
    _next_stage text;
    _data jsonb;
    _reply jsonb;
    _metadata jsonb;
BEGIN
    SELECT * INTO _rule FROM genesis_command_catalogue() c WHERE c.command_type = _command_type;
    IF NOT FOUND THEN
        PERFORM genesis_refuse('GS422', format('Unknown command type %L', _command_type),
            jsonb_build_object('supported_command_types',
                               (SELECT jsonb_agg(c.command_type ORDER BY c.command_type)
                                  FROM genesis_command_catalogue() c)));
    END IF;
    IF _payload IS NULL OR jsonb_typeof(_payload) <> 'object' THEN
        PERFORM genesis_refuse('GS423', 'payload must be a JSON object',
                               jsonb_build_object('fields', jsonb_build_object('payload', 'must be an object')));
    END IF;

    SELECT * INTO _session FROM genesis_sessions s WHERE s.id = _session_id FOR UPDATE;
    IF NOT FOUND OR _session.user_id IS DISTINCT FROM _user_id THEN
        PERFORM genesis_refuse('GS404', 'Session not found', jsonb_build_object('session_id', _session_id));
    END IF;

    -- Idempotency-Key: the same command again answers what it answered first.
    IF _idempotency_key IS NOT NULL THEN
        SELECT * INTO _earlier FROM command_inbox c
         WHERE c.session_id = _session_id AND c.idempotency_key = _idempotency_key;
        IF FOUND THEN
            IF _earlier.command_type <> _command_type OR _earlier.payload <> _payload THEN
                PERFORM genesis_refuse('GS424', 'Idempotency-Key was already used for a different command',
                                       jsonb_build_object('command_id', _earlier.id));
            END IF;
            RETURN QUERY SELECT _earlier.id, _earlier.reply->>'status', _rule.is_async, true,
                                ARRAY(SELECT jsonb_array_elements_text(_earlier.reply->'event_ids')::uuid),
                                _earlier.reply->'session';
            RETURN;
        END IF;
    END IF;

    IF _session.status <> 'IN_PROGRESS' THEN
        PERFORM genesis_refuse('GS411', format('Session is %s', _session.status),
                               jsonb_build_object('session_status', _session.status));
    END IF;
    IF _rule.required_text IS NOT NULL
       AND (jsonb_typeof(_payload -> _rule.required_text) IS DISTINCT FROM 'string'
            OR genesis_is_blank(_payload ->> _rule.required_text)) THEN
        PERFORM genesis_refuse('GS423', format('payload.%s must be a non-empty string', _rule.required_text),
            jsonb_build_object('fields', jsonb_build_object(_rule.required_text, 'must be a non-empty string')));
    END IF;
    IF _rule.required_stage IS NOT NULL AND _session.stage <> _rule.required_stage THEN
        PERFORM genesis_refuse('GS410',
            format('%s needs stage %s; the session is at %s', _command_type, _rule.required_stage, _session.stage),
            jsonb_build_object('current_stage', _session.stage, 'required_stage', _rule.required_stage));
    END IF;
    IF _command_type = 'ConfirmStage' AND _payload ->> 'stage' <> _session.stage THEN
        PERFORM genesis_refuse('GS410',
            format('Cannot confirm %s; the session is at %s', _payload ->> 'stage', _session.stage),
            jsonb_build_object('current_stage', _session.stage, 'requested_stage', _payload ->> 'stage'));
    END IF;

    _status := CASE WHEN _rule.is_async THEN 'RECEIVED' ELSE 'COMPLETED' END;
    _event_ids := ARRAY[gen_random_uuid()];
    IF _command_type = 'ConfirmStage' THEN
        _next_stage := genesis_next_stage(_session.stage);
        _data := coalesce(_payload -> 'data', '{}'::jsonb);
        IF _next_stage = 'FINISHED' THEN
            _event_ids := _event_ids || gen_random_uuid();
        END IF;
    END IF;

    -- The session row is written once per command: its events' versions and newest event, and for
    -- ConfirmStage its next stage. A refusal below (the duplicate guard) rolls it back with the rest.
    _before := _session;
    UPDATE genesis_sessions s
       SET version = s.version + cardinality(_event_ids), last_event_id = _event_ids[cardinality(_event_ids)],
           updated_at = now(),
           stage = coalesce(_next_stage, s.stage),
           status = CASE WHEN _next_stage = 'FINISHED' THEN 'COMPLETED' ELSE s.status END,
           stage_data = CASE WHEN _next_stage IS NULL THEN s.stage_data
                             ELSE s.stage_data || jsonb_build_object(s.stage, _data) END
     WHERE s.id = _session_id
    RETURNING * INTO _session;

    -- The answer an Idempotency-Key replays, stored with the row: only a keyed command is ever replayed.
    IF _idempotency_key IS NOT NULL THEN
        _reply := jsonb_build_object('status', _status, 'event_ids', to_jsonb(_event_ids),
                                     'session', CASE WHEN _rule.is_async THEN NULL
                                                     ELSE genesis_session_json(_session) END);
    END IF;
    IF _rule.is_async THEN
        -- The duplicate guard is the partial unique index, not a read-then-write check.
        INSERT INTO command_inbox AS c (id, session_id, user_id, command_type, idempotency_key, payload,
                                        status, reply, request_id)
        VALUES (_command_id, _session_id, _user_id, _command_type, _idempotency_key, _payload, _status,
                _reply, _request_id)
        ON CONFLICT (session_id, command_type) WHERE status IN ('RECEIVED', 'PROCESSING') DO NOTHING;
        IF NOT FOUND THEN
            PERFORM genesis_refuse('GS409', 'Command already processing',
                jsonb_build_object('duplicate_command_id',
                    (SELECT c.id FROM command_inbox c
                      WHERE c.session_id = _session_id AND c.command_type = _command_type
                        AND c.status IN ('RECEIVED', 'PROCESSING'))));
        END IF;
    ELSE
        -- Completed as it is recorded: never pending, so never a duplicate.
        INSERT INTO command_inbox (id, session_id, user_id, command_type, idempotency_key, payload, status, reply,
                                   request_id, completed_at)
        VALUES (_command_id, _session_id, _user_id, _command_type, _idempotency_key, _payload, _status, _reply,
                _request_id, now());
    END IF;

    -- A flow waiting in this session for this command type resumes with it (issue 25), in this transaction.
    _metadata := (SELECT jsonb_build_object('resumes', r)
                    FROM genesis_resume_flow(_session_id, _command_type, _command_id, _payload) r WHERE r IS NOT NULL);
    IF _command_type = 'ConfirmStage' THEN
        PERFORM genesis_record_event(_session_id, _before.version + 1, _before.last_event_id, _event_ids[1],
            _rule.event_type,
            jsonb_build_object('stage', _before.stage, 'next_stage', _next_stage, 'data', _data),
            _command_id, _user_id, _request_id, _traceparent, _tracestate, _metadata);
        IF _next_stage = 'FINISHED' THEN
            PERFORM genesis_record_event(_session_id, _before.version + 2, _event_ids[1], _event_ids[2],
                'Genesis.Session.Finished', jsonb_build_object('stage_data', _session.stage_data),
                _command_id, _user_id, _request_id, _traceparent, _tracestate);
        END IF;
    ELSE
        PERFORM genesis_record_event(_session_id, _before.version + 1, _before.last_event_id, _event_ids[1],
            _rule.event_type, _payload, _command_id, _user_id, _request_id, _traceparent, _tracestate,
            _metadata);
    END IF;
    IF _rule.is_async THEN
        INSERT INTO async_tasks (command_id, session_id, task_type, input)
        VALUES (_command_id, _session_id, _command_type, _payload);
    END IF;

    RETURN QUERY SELECT _command_id, _status, _rule.is_async, false, _event_ids,
                        CASE WHEN _rule.is_async THEN NULL ELSE genesis_session_json(_session) END;
END;
$$;
