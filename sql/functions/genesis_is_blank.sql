-- Whether a text is empty or white space only: the rule behind "payload.<field> must be a non-empty string".
-- White space is Unicode's White_Space property, listed character by character: btrim with an explicit set
-- answers the same on every server, whatever its locale, encoding tables or collation provider (a regex's
-- [[:space:]] or \s does not, and a bare btrim strips spaces only). genesis/commands.py mirrors the list
-- (WHITE_SPACE) for the API's error message; tests/integration/sql/test_rule_parity.py holds the two equal.
CREATE OR REPLACE FUNCTION genesis_is_blank(_text text)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT btrim(_text, E'\t\n\u000B\f\r \u0085\u00A0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007'
                        || E'\u2008\u2009\u200A\u2028\u2029\u202F\u205F\u3000') = ''
$$;
