-- Raises a refusal with the service's own SQLSTATE; `detail` carries the machine-readable
-- fields (JSON) that the Python side copies into the error body.
CREATE OR REPLACE FUNCTION genesis_refuse(_errcode text, _message text, _detail jsonb DEFAULT '{}'::jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = _errcode, MESSAGE = _message, DETAIL = _detail::text;
END;
$$;
