"""The event types the API lists (genesis/event_types.py) are exactly those the SQL functions record."""

from __future__ import annotations

import re
from pathlib import Path

from genesis.event_types import EVENT_TYPES
from genesis.events import is_valid_event_type

SQL_FUNCTIONS = Path(__file__).resolve().parents[2] / "sql" / "functions"
_LITERAL = re.compile(r"'(Genesis\.[A-Za-z.]+)'")


def test_the_list_is_every_event_type_the_sql_functions_name() -> None:
    named = {m for path in SQL_FUNCTIONS.glob("*.sql") for m in _LITERAL.findall(path.read_text())}
    assert named  # the pattern still finds them
    assert sorted(EVENT_TYPES) == sorted(named)
    assert len(set(EVENT_TYPES)) == len(EVENT_TYPES)
    assert all(is_valid_event_type(t) for t in EVENT_TYPES)
