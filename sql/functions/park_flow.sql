-- For agents: parks the flow of command `_command_id` until the user's next command of a type in `_expects`
-- (CONTRACT §9 "Waiting for the user"). Returns the handle's JSON (flow_handle_json) and whether it was
-- created now (false: the same request again, answered as first and recording nothing).
-- Locks the session row first (as submit_command does), then handle rows: the two cannot deadlock, and a
-- command and a park of one session run one after the other, so a command either finds the handle or is
-- found by it (the race below).
-- Resume before the pause: a command of an expected type recorded in the session after `_command_id` and not
-- used by any handle resumes the handle as it is created (status RESUMED at once).
-- Refusals: GS405 unknown command, GS423 bad arguments, GS413 another open handle for this flow (409), GS411 a
-- new handle on a session that is no longer IN_PROGRESS (409 SESSION_CLOSED: no command could resume it).
CREATE OR REPLACE FUNCTION park_flow(_command_id uuid, _resume_handle jsonb, _timeout_seconds integer,
                                     _expects text[])
RETURNS TABLE (handle jsonb, created boolean)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    _command command_inbox;
    _handle flow_resume_handles;
    _answer command_inbox;
    _unknown text[];
    _session_status text;
BEGIN
    IF _resume_handle IS NULL OR jsonb_typeof(_resume_handle) <> 'object' THEN
        PERFORM genesis_refuse('GS423', 'resume_handle must be a JSON object',
                               jsonb_build_object('fields', jsonb_build_object('resume_handle', 'must be an object')));
    END IF;
    IF _timeout_seconds IS NULL OR _timeout_seconds NOT BETWEEN 1 AND 604800 THEN
        PERFORM genesis_refuse('GS423', 'timeout_seconds must be an integer 1-604800',
            jsonb_build_object('fields', jsonb_build_object('timeout_seconds', 'integer 1..604800')));
    END IF;
    _unknown := ARRAY(SELECT t FROM unnest(_expects) t
                       WHERE t IS NULL OR t NOT IN (SELECT c.command_type FROM genesis_command_catalogue() c));
    IF coalesce(cardinality(_expects), 0) = 0 OR cardinality(_unknown) > 0 THEN
        PERFORM genesis_refuse('GS423', 'expects must name one or more known command types',
            jsonb_build_object('fields', jsonb_build_object('expects', 'one or more known command types')));
    END IF;
    _expects := ARRAY(SELECT DISTINCT t FROM unnest(_expects) t ORDER BY t);

    SELECT * INTO _command FROM command_inbox c WHERE c.id = _command_id;
    IF NOT FOUND THEN
        PERFORM genesis_refuse('GS405', 'Command not found', jsonb_build_object('command_id', _command_id));
    END IF;
    -- Written, not only locked: a command submitted at REPEATABLE READ whose snapshot predates this park
    -- then fails to serialize and is retried, seeing the handle; otherwise each could miss the other.
    -- (Its `waiting` list changes too, so updated_at moves with it.)
    UPDATE genesis_sessions s SET updated_at = now() WHERE s.id = _command.session_id
    RETURNING s.status INTO _session_status;

    -- The flow's newest handle: the same request again answers it; another open one refuses.
    SELECT * INTO _handle FROM flow_resume_handles h
     WHERE h.correlation_id = _command_id ORDER BY h.created_at DESC, h.id DESC LIMIT 1;
    IF FOUND AND _handle.status IN ('PENDING_PAUSE', 'PAUSED') AND _handle.expires_at <= now() THEN
        -- Past its time and not swept yet: no command can resume it, so it is expired here as the sweep would,
        -- its event included. Then a retry answers it EXPIRED, and a new wait is not refused by it.
        PERFORM genesis_expire_flow_handle(_handle.id);
        SELECT * INTO _handle FROM flow_resume_handles h WHERE h.id = _handle.id;
    END IF;
    IF FOUND AND _handle.resume_handle = _resume_handle AND _handle.expects = _expects
       AND _handle.timeout_seconds = _timeout_seconds THEN
        RETURN QUERY SELECT flow_handle_json(_handle), false;
        RETURN;
    END IF;
    IF FOUND AND _handle.status IN ('PENDING_PAUSE', 'PAUSED') THEN
        PERFORM genesis_refuse('GS413', 'The flow is already waiting',
                               jsonb_build_object('handle_id', _handle.id, 'correlation_id', _command_id));
    END IF;

    -- The race: the user answered before the pause landed.
    SELECT * INTO _answer FROM command_inbox c
     WHERE c.session_id = _command.session_id AND c.command_type = ANY (_expects)
       AND (c.created_at, c.id) > (_command.created_at, _command.id) AND c.id <> _command_id
       AND NOT EXISTS (SELECT 1 FROM flow_resume_handles h WHERE h.resumed_by = c.id)
     ORDER BY c.created_at, c.id LIMIT 1;
    -- A handle to wait on a session that takes no more commands would never be resumed; one answered already is
    -- created as it is (and a retry of a park that landed was answered above).
    IF _answer.id IS NULL AND _session_status <> 'IN_PROGRESS' THEN
        PERFORM genesis_refuse('GS411', format('Session is %s', _session_status),
                               jsonb_build_object('session_status', _session_status));
    END IF;

    INSERT INTO flow_resume_handles AS h (correlation_id, session_id, resume_handle, status, expects,
                                         timeout_seconds, expires_at, resume_payload, resumed_by, resumed_at)
    VALUES (_command_id, _command.session_id, _resume_handle,
            CASE WHEN _answer.id IS NULL THEN 'PAUSED' ELSE 'RESUMED' END, _expects, _timeout_seconds,
            now() + make_interval(secs => _timeout_seconds), _answer.payload, _answer.id,
            CASE WHEN _answer.id IS NULL THEN NULL ELSE now() END)
    RETURNING * INTO _handle;
    RETURN QUERY SELECT flow_handle_json(_handle), true;
END;
$$;
