"""One rule, two paths: every rule of the command catalogue gives the same verdict whether a command comes through the
API (Python's mirror of the rule, then SQL) or straight from psql (SQL alone, the authority). The Python models'
shape rules beyond the catalogue (count 1–10, no unknown fields…) are stricter on purpose and are not compared."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import asyncpg
import pydantic
import pytest
from aiohttp.test_utils import TestClient

from genesis import commands, db, errors

SURROGATES = range(0xD800, 0xE000)  # not characters: PostgreSQL's chr() and UTF-8 refuse them
BLANK_IN_SQL = """SELECT array_agg(cp ORDER BY cp) FROM generate_series(1, 1114111) cp
                   WHERE cp NOT BETWEEN 55296 AND 57343 AND genesis_is_blank(chr(cp))"""


async def test_white_space_is_the_same_set_of_characters_in_sql_and_in_python(conn: asyncpg.Connection[Any]) -> None:
    in_sql = set(await conn.fetchval(BLANK_IN_SQL))
    in_python = {cp for cp in range(1, 0x110000) if cp not in SURROGATES and commands.is_blank(chr(cp))}
    assert in_sql == in_python
    # And it is Unicode's White_Space, as an independent reader of the Unicode tables has it (the regex crate's \s,
    # through pydantic). Every White_Space character is in the BMP.
    white_space = pydantic.TypeAdapter(pydantic.constr(pattern=r"^\s$"))
    oracle = set()
    for cp in range(1, 0x10000):
        if cp in SURROGATES:
            continue
        try:
            white_space.validate_python(chr(cp))
        except pydantic.ValidationError:
            continue
        oracle.add(cp)
    assert in_python == oracle


# Feedback that is blank to one reading of "white space" and not to another: the rule is Unicode's White_Space.
FEEDBACK = [
    ("Darker, please.", True),
    ("", False),
    (" ", False),
    ("\t\n", False),  # the report: accepted from psql, 422 from the API
    ("\r\n\x0b\x0c", False),
    ("\xa0", False),  # no-break space: White_Space, though not [[:space:]] under C.UTF-8
    ("\x85", False),
    ("\u2003\u3000\u2028", False),
    (" \u3000x\t", True),
    ("\u200b", True),  # zero-width space: not White_Space
    ("\ufeff", True),  # BOM: not White_Space, though JavaScript's \s has it
    ("\x1c\x1d\x1e\x1f", True),  # separators: str.isspace() says yes, White_Space says no
    ("\u180e", True),  # Mongolian vowel separator: White_Space until Unicode 6.3
]

# (label, setup: the commands that bring a fresh session to its state, command_type, payload, verdict)
Case = tuple[str, list[dict[str, Any]], str, Any, str]
CONFIRM = {"command_type": "ConfirmStage", "payload": {"stage": "CONCEPT_SELECTION"}}
FINISH = [
    {"command_type": "ConfirmStage", "payload": {"stage": stage}}
    for stage in ("CONCEPT_SELECTION", "STORY_CONCEPTION", "WORLDVIEW", "CHARACTERS", "PLOT_OUTLINE")
]
CASES: list[Case] = [
    ("unknown type", [], "Nope", {}, "UNKNOWN_COMMAND"),
    ("payload not an object", [], "RequestConceptGeneration", [1], "VALIDATION_ERROR"),
    ("concepts at their stage", [], "RequestConceptGeneration", {}, "accepted"),
    ("concepts past their stage", [CONFIRM], "RequestConceptGeneration", {}, "STAGE_CONFLICT"),
    *[
        (f"feedback {text!r}", [], "SubmitFeedback", {"feedback": text}, "accepted" if ok else "VALIDATION_ERROR")
        for text, ok in FEEDBACK
    ],
    ("feedback not a string", [], "SubmitFeedback", {"feedback": 42}, "VALIDATION_ERROR"),
    ("feedback missing", [], "SubmitFeedback", {}, "VALIDATION_ERROR"),
    ("feedback on a finished session", FINISH, "SubmitFeedback", {"feedback": "more"}, "SESSION_CLOSED"),
    ("confirm the current stage", [], "ConfirmStage", {"stage": "CONCEPT_SELECTION"}, "accepted"),
    ("confirm another stage", [], "ConfirmStage", {"stage": "WORLDVIEW"}, "STAGE_CONFLICT"),
    ("confirm a blank stage", [], "ConfirmStage", {"stage": "\t"}, "VALIDATION_ERROR"),
    ("confirm without a stage", [], "ConfirmStage", {}, "VALIDATION_ERROR"),
]


async def _session(conn: asyncpg.Connection[Any], setup: list[dict[str, Any]]) -> str:
    session = str((await conn.fetchval("SELECT create_session('alice')"))["id"])
    for command in setup:
        await _from_psql(conn, session, command["command_type"], command["payload"])
    return session


async def _from_psql(conn: asyncpg.Connection[Any], session: str, command_type: str, payload: Any) -> str:
    try:
        with db.refusals():
            await conn.fetchrow(
                "SELECT * FROM submit_command($1::uuid, $2, $3::jsonb, 'alice')", session, command_type, payload
            )
    except errors.DomainError as exc:
        return exc.error_code
    return "accepted"


async def _from_the_api(
    client: TestClient[Any, Any], headers: dict[str, str], session: str, command_type: str, payload: Any
) -> str:
    body = {"command_type": command_type, "payload": payload}
    response = await client.post(f"/genesis/sessions/{session}/commands", json=body, headers=headers)
    answer = await response.json()
    assert response.status < 500, answer
    return "accepted" if response.status in (200, 202) else str(answer["error_code"])


@pytest.mark.parametrize(("label", "setup", "command_type", "payload", "verdict"), CASES, ids=[c[0] for c in CASES])
async def test_every_catalogue_rule_gives_the_same_verdict_from_the_api_and_from_psql(
    conn: asyncpg.Connection[Any],
    client: TestClient[Any, Any],
    auth: Callable[[str], dict[str, str]],
    label: str,
    setup: list[dict[str, Any]],
    command_type: str,
    payload: Any,
    verdict: str,
) -> None:
    from_psql = await _from_psql(conn, await _session(conn, setup), command_type, payload)
    from_the_api = await _from_the_api(client, auth("alice"), await _session(conn, setup), command_type, payload)
    assert (from_psql, from_the_api) == (verdict, verdict), json.dumps(payload)
