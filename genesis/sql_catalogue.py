"""The SQL command catalogue's rows, read from their source (sql/functions/genesis_command_catalogue.sql).

Documents generated without a database (the AsyncAPI description of the topic) take the command types and the
events they record from here, so the event list is written once, in SQL. The file is a single `VALUES` list of
literals; tests/integration/sql keeps what this reads equal to what `genesis_command_catalogue()` returns.
"""

from __future__ import annotations

import functools
import re

from genesis.migrate import sql_dir

Value = str | bool | None

_COLUMNS = re.compile(r"RETURNS TABLE\s*\((?P<columns>[^)]*)\)", re.IGNORECASE)
_VALUES = re.compile(r"\bVALUES\b(?P<rows>.*?)\$\$", re.IGNORECASE | re.DOTALL)
# Literals and punctuation of a VALUES list; SQL comments are skipped.
_TOKEN = re.compile(r"--[^\n]*|'(?:[^']|'')*'|NULL|true|false|[(),]|\S", re.IGNORECASE)


class CatalogueSourceError(ValueError):
    """The catalogue file holds something other than one VALUES list of literals."""


@functools.cache
def command_catalogue() -> tuple[dict[str, Value], ...]:
    """One dict per catalogue row (column name → literal), in the file's order."""
    return parse((sql_dir() / "functions" / "genesis_command_catalogue.sql").read_text())


def parse(source: str) -> tuple[dict[str, Value], ...]:
    columns_match, values_match = _COLUMNS.search(source), _VALUES.search(source)
    if columns_match is None or values_match is None:
        raise CatalogueSourceError("no RETURNS TABLE (...) or no VALUES list")
    columns = [c.split()[0] for c in columns_match["columns"].split(",")]
    rows: list[dict[str, Value]] = []
    row: list[Value] | None = None
    for token in _TOKEN.findall(values_match["rows"]):
        if token.startswith("--"):
            continue
        if row is None:
            if token == "(":
                row = []
            elif token != ",":
                raise CatalogueSourceError(f"{token!r} between rows: only literals in rows are read")
        elif token == ")":
            if len(row) != len(columns):
                raise CatalogueSourceError(f"a row of {len(row)} values for {len(columns)} columns: {row}")
            rows.append(dict(zip(columns, row, strict=True)))
            row = None
        elif token != ",":
            row.append(_literal(token))
    if row is not None or not rows:
        raise CatalogueSourceError("an unclosed row, or no row at all")
    return tuple(rows)


def _literal(token: str) -> Value:
    if token.startswith("'"):
        return token[1:-1].replace("''", "'")
    if token.upper() == "NULL":
        return None
    if token.lower() in ("true", "false"):
        return token.lower() == "true"
    raise CatalogueSourceError(f"not a literal: {token!r}")
