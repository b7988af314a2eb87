"""Reading the SQL command catalogue from its source (genesis/sql_catalogue.py): literals only, or a clear refusal.
tests/integration/sql/test_catalogue_source.py holds what it reads equal to the function's rows."""

from __future__ import annotations

import pytest

from genesis.sql_catalogue import CatalogueSourceError, parse

HEAD = "CREATE OR REPLACE FUNCTION c() RETURNS TABLE (command_type text, is_async boolean, note text) AS $$\n"


def test_literals_become_python_values_and_comments_are_skipped() -> None:
    source = HEAD + "VALUES -- a comment\n ('A', true, 'it''s'),\n ('B', FALSE, NULL) -- (not a row)\n$$;"
    assert parse(source) == (
        {"command_type": "A", "is_async": True, "note": "it's"},
        {"command_type": "B", "is_async": False, "note": None},
    )


@pytest.mark.parametrize(
    "values",
    [
        "VALUES ('A', true)",  # a column short
        "VALUES ('A', true, NULL, NULL)",  # one too many
        "VALUES ('A', true, lower('x'))",  # not a literal
        "VALUES ('A', true, NULL) UNION SELECT 'B', false, NULL",  # something other than rows
        "VALUES ('A', true, NULL",  # unclosed
        "VALUES",  # no rows
    ],
)
def test_anything_else_is_refused(values: str) -> None:
    with pytest.raises(CatalogueSourceError):
        parse(HEAD + values + "\n$$;")


def test_no_values_list_is_refused() -> None:
    with pytest.raises(CatalogueSourceError):
        parse("CREATE FUNCTION c() RETURNS TABLE (a text) AS $$ SELECT 'x' $$;")
