"""Every refusal of CONTRACT section 4 for commands: exact status, error body, and no table touched."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import asyncpg
import pytest

from api.requests import MAX_BODY_BYTES
from tests.integration.tables import STAGES, Auth, Client, commands_url, confirm, finish, row_counts

UNSTORABLE = "no NUL or unpaired surrogate characters"
SUPPORTED = ["ConfirmStage", "RequestConceptGeneration", "SubmitFeedback"]


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"n": value}
    return value


class Case(NamedTuple):
    name: str
    body: object  # sent as JSON unless `raw` is set
    status: int
    error_code: str
    fields: dict[str, Any] | None = None  # expected subset of the error body
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] | None = None
    names: str | None = None  # a field the error body's `fields` must name


CASES = [
    Case("unknown command", {"command_type": "LaunchRocket", "payload": {}}, 422, "UNKNOWN_COMMAND",
         {"supported_command_types": SUPPORTED}),
    Case("int command_type", {"command_type": 7, "payload": {}}, 422, "VALIDATION_ERROR",
         {"fields": {"command_type": "required string"}}),
    Case("null command_type", {"command_type": None}, 422, "VALIDATION_ERROR",
         {"fields": {"command_type": "required string"}}),
    Case("list command_type", {"command_type": ["ConfirmStage"]}, 422, "VALIDATION_ERROR",
         {"fields": {"command_type": "required string"}}),
    Case("missing command_type", {"payload": {}}, 422, "VALIDATION_ERROR",
         {"fields": {"command_type": "required string"}}),
    Case("empty command_type", {"command_type": ""}, 422, "VALIDATION_ERROR",
         {"fields": {"command_type": "required string"}}),
    Case("unknown body keys", {"command_type": "ConfirmStage", "payload": {"stage": "CONCEPT_SELECTION"},
                               "extra": 1, "also": 2}, 422, "VALIDATION_ERROR",
         {"fields": {"also": "not allowed", "extra": "not allowed"}}),
    Case("body is a list", [{"command_type": "ConfirmStage"}], 422, "VALIDATION_ERROR",
         {"fields": {"body": "must be an object"}}),
    Case("body is null", None, 422, "VALIDATION_ERROR", {"fields": {"body": "must be an object"}}),
    Case("payload is a list", {"command_type": "RequestConceptGeneration", "payload": [1]}, 422,
         "VALIDATION_ERROR", {"fields": {"payload": "must be an object"}}),
    Case("payload is null", {"command_type": "RequestConceptGeneration", "payload": None}, 422,
         "VALIDATION_ERROR", {"fields": {"payload": "must be an object"}}),
    Case("count as a string", {"command_type": "RequestConceptGeneration", "payload": {"count": "3"}}, 422,
         "VALIDATION_ERROR", names="payload.count"),
    Case("count out of range", {"command_type": "RequestConceptGeneration", "payload": {"count": 0}}, 422,
         "VALIDATION_ERROR"),
    Case("unknown payload key", {"command_type": "RequestConceptGeneration", "payload": {"colour": "red"}}, 422,
         "VALIDATION_ERROR", names="payload.colour"),
    Case("confirm without stage", {"command_type": "ConfirmStage", "payload": {}}, 422, "VALIDATION_ERROR"),
    Case("confirm unknown stage", {"command_type": "ConfirmStage", "payload": {"stage": "EPILOGUE"}}, 422,
         "VALIDATION_ERROR", names="payload.stage"),
    Case("empty feedback", {"command_type": "SubmitFeedback", "payload": {"feedback": ""}}, 422,
         "VALIDATION_ERROR", names="payload.feedback"),
    Case("blank feedback", {"command_type": "SubmitFeedback", "payload": {"feedback": " \n\t "}}, 422,
         "VALIDATION_ERROR"),
    Case("bad Idempotency-Key", {"command_type": "RequestConceptGeneration", "payload": {}}, 422,
         "VALIDATION_ERROR", headers={"Idempotency-Key": "has spaces in it"}),
    Case("long Idempotency-Key", {"command_type": "RequestConceptGeneration", "payload": {}}, 400,
         "HEADER_TOO_LARGE", {"header": "Idempotency-Key", "limit_characters": 255},
         headers={"Idempotency-Key": "k" * 256}),
    Case("1e400", None, 422, "VALIDATION_ERROR", {"fields": {"payload.data.score": "must be a finite number"}},
         raw=b'{"command_type": "ConfirmStage", "payload": {"stage": "CONCEPT_SELECTION", "data": {"score": 1e400}}}'),
    Case("-1e400", None, 422, "VALIDATION_ERROR", names="payload.data.scores[1]",
         raw=b'{"command_type": "ConfirmStage", "payload": {"stage": "CONCEPT_SELECTION", "data": {"scores": '
             b'[1, -1e400]}}}'),
    Case("5,000-digit integer", None, 422, "VALIDATION_ERROR",
         {"fields": {"payload.data.n": "must be an integer of at most 1000 digits"}},
         raw=b'{"command_type": "ConfirmStage", "payload": {"stage": "CONCEPT_SELECTION", "data": {"n": -'
             + b"9" * 5000 + b"}}}"),
    Case("invalid JSON", None, 400, "INVALID_JSON", raw=b'{"command_type": '),
    Case("invalid UTF-8", None, 400, "INVALID_JSON", raw=b'{"command_type": "\xff"}'),
    Case("empty body", None, 400, "INVALID_JSON", raw=b""),
    Case("NaN", None, 400, "INVALID_JSON",
         raw=b'{"command_type": "RequestConceptGeneration", "payload": {"preferences": {"x": NaN}}}'),
    Case("-Infinity", None, 400, "INVALID_JSON",
         raw=b'{"command_type": "RequestConceptGeneration", "payload": {"preferences": {"x": -Infinity}}}'),
    Case("nested past the parser", None, 400, "INVALID_JSON", raw=b"[" * 30_000 + b"]" * 30_000),
    Case("nested past 64 levels", {"command_type": "RequestConceptGeneration",
                                   "payload": {"preferences": _nested(70)}}, 422, "VALIDATION_ERROR",
         {"fields": {"body": "at most 64 levels"}}),
    Case("NUL in a value", {"command_type": "SubmitFeedback", "payload": {"feedback": "a\u0000b"}}, 422,
         "VALIDATION_ERROR", {"fields": {"payload.feedback": UNSTORABLE}}),
    Case("NUL in a key", {"command_type": "RequestConceptGeneration", "payload": {"preferences": {"k\u0000": 1}}},
         422, "VALIDATION_ERROR", {"fields": {"payload.preferences": UNSTORABLE}}),
    Case("lone surrogate", None, 422, "VALIDATION_ERROR", {"fields": {"payload.preferences.x[0]": UNSTORABLE}},
         raw=b'{"command_type": "RequestConceptGeneration", "payload": {"preferences": {"x": ["\\ud800"]}}}'),
    Case("gzip that is not", None, 400, "INVALID_JSON", raw=b'{"command_type": "ConfirmStage"}',
         headers={"Content-Encoding": "gzip"}),
    Case("deflate that is not", None, 400, "INVALID_JSON", raw=b"not deflate", headers={"Content-Encoding": "deflate"}),
    Case("text/plain body", None, 415, "UNSUPPORTED_MEDIA_TYPE", raw=b"ConfirmStage", content_type="text/plain"),
    Case("form body", None, 415, "UNSUPPORTED_MEDIA_TYPE", raw=b"command_type=ConfirmStage",
         content_type="application/x-www-form-urlencoded"),
    Case("body over 64 KiB", {"command_type": "SubmitFeedback", "payload": {"feedback": "x" * 70_000}}, 413,
         "PAYLOAD_TOO_LARGE", {"limit_bytes": 65536}),
    Case("wrong stage", {"command_type": "ConfirmStage", "payload": {"stage": "WORLDVIEW"}}, 409, "STAGE_CONFLICT",
         {"current_stage": "CONCEPT_SELECTION", "requested_stage": "WORLDVIEW"}),
]  # fmt: skip


async def _send(client: Client, auth: Auth, session_id: str, case: Case) -> tuple[int, dict[str, Any]]:
    data = case.raw if case.raw is not None else json.dumps(case.body).encode()
    headers = {**auth(), "Content-Type": case.content_type, **(case.headers or {})}
    response = await client.post(commands_url(session_id), data=data, headers=headers)
    assert response.content_type == "application/json", case.name
    return response.status, await response.json()


async def test_every_refusal_has_its_status_and_body_and_stores_nothing(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    before = await row_counts(conn)
    for case in CASES:
        status, body = await _send(client, auth, session_id, case)
        assert (status, body.get("error_code")) == (case.status, case.error_code), (case.name, body)
        assert isinstance(body["message"], str), case.name
        assert body["message"], case.name
        for key, value in (case.fields or {}).items():
            assert body.get(key) == value, (case.name, body)
        if case.error_code == "VALIDATION_ERROR":
            assert isinstance(body.get("fields"), dict), (case.name, body)
            assert body["fields"], (case.name, body)
        if case.names is not None:
            assert case.names in body["fields"], (case.name, body)
        assert await row_counts(conn) == before, case.name
    session = await conn.fetchrow("SELECT stage, version FROM genesis_sessions WHERE id = $1", uuid.UUID(session_id))
    assert session is not None
    assert tuple(session) == ("CONCEPT_SELECTION", 1)


def _body_of(size: int) -> bytes:
    """A valid command body of exactly `size` bytes: preferences take text of any length."""
    head = b'{"command_type": "RequestConceptGeneration", "payload": {"preferences": {"pad": "'
    tail = b'"}}}'
    body = head + b"p" * (size - len(head) - len(tail)) + tail
    assert len(body) == size
    return body


async def _chunked(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 4096):
        yield body[start : start + 4096]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_the_body_limit_is_exactly_64_kib(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any], chunked: bool
) -> None:
    # With a Content-Length the handler refuses before reading; chunked, aiohttp's read limit does.
    assert MAX_BODY_BYTES == 65_536

    async def post(body: bytes) -> tuple[int, dict[str, Any]]:
        headers = {**auth(), "Content-Type": "application/json"}
        response = await client.post(
            commands_url(session_id), data=_chunked(body) if chunked else body, headers=headers
        )
        return response.status, await response.json()

    before = await row_counts(conn)
    assert await post(_body_of(65_537)) == (413, {
        "error_code": "PAYLOAD_TOO_LARGE", "message": "Body is over 65536 bytes", "limit_bytes": 65_536,
    })  # fmt: skip
    assert await row_counts(conn) == before

    exact = _body_of(65_536)
    status, body = await post(exact)
    assert status == 202, body
    stored = await conn.fetchval("SELECT payload FROM command_inbox WHERE id = $1", uuid.UUID(body["command_id"]))
    assert stored == json.loads(exact)["payload"]


async def test_nesting_within_the_limit_and_unicode_are_stored(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    preferences = {"deep": _nested(50), "text": "naïve 🦄 \u2028 tab\t"}
    request = {"command_type": "RequestConceptGeneration", "payload": {"preferences": preferences}}
    response = await client.post(commands_url(session_id), json=request, headers=auth())
    assert response.status == 202, await response.text()
    stored = await conn.fetchval("SELECT payload FROM command_inbox WHERE id = $1",
                                 uuid.UUID((await response.json())["command_id"]))  # fmt: skip
    assert stored == {"preferences": preferences}


async def test_duplicate_pending_command_is_the_exact_409_and_stores_nothing(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    request = {"command_type": "SubmitFeedback", "payload": {"feedback": "one"}}
    first = await client.post(commands_url(session_id), json=request, headers=auth())
    assert first.status == 202
    winner = (await first.json())["command_id"]
    before = await row_counts(conn)
    # A different payload is still the same pending command type.
    again = {"command_type": "SubmitFeedback", "payload": {"feedback": "two"}}
    response = await client.post(commands_url(session_id), json=again, headers=auth())
    assert response.status == 409
    assert await response.json() == {
        "error_code": "DUPLICATE_COMMAND",
        "message": "Command already processing",
        "duplicate_command_id": winner,
    }
    assert await row_counts(conn) == before
    # Another command type is not a duplicate.
    other = {"command_type": "RequestConceptGeneration", "payload": {}}
    assert (await client.post(commands_url(session_id), json=other, headers=auth())).status == 202


async def test_concept_generation_outside_concept_selection_is_stage_conflict(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    await confirm(client, auth(), session_id, "CONCEPT_SELECTION")
    before = await row_counts(conn)
    for request, fields in [
        ({"command_type": "RequestConceptGeneration", "payload": {}},
         {"current_stage": "STORY_CONCEPTION", "required_stage": "CONCEPT_SELECTION"}),
        ({"command_type": "ConfirmStage", "payload": {"stage": "CONCEPT_SELECTION"}},
         {"current_stage": "STORY_CONCEPTION", "requested_stage": "CONCEPT_SELECTION"}),
    ]:  # fmt: skip
        response = await client.post(commands_url(session_id), json=request, headers=auth())
        body = await response.json()
        assert response.status == 409, body
        assert body["error_code"] == "STAGE_CONFLICT"
        assert {k: body[k] for k in fields} == fields
    assert await row_counts(conn) == before


async def test_every_command_on_a_finished_session_is_session_closed(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    await finish(client, auth(), session_id)
    before = await row_counts(conn)
    requests = [
        {"command_type": "SubmitFeedback", "payload": {"feedback": "too late"}},
        {"command_type": "RequestConceptGeneration", "payload": {}},
        *({"command_type": "ConfirmStage", "payload": {"stage": stage}} for stage in (*STAGES, "FINISHED")),
    ]
    for request in requests:
        response = await client.post(commands_url(session_id), json=request, headers=auth())
        body = await response.json()
        assert response.status == 409, (request, body)
        assert body["error_code"] == "SESSION_CLOSED"
        assert body["session_status"] == "COMPLETED"
    assert await row_counts(conn) == before


async def test_an_unauthenticated_command_is_401_and_stores_nothing(
    client: Client, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    before = await row_counts(conn)
    request = {"command_type": "RequestConceptGeneration", "payload": {}}
    response = await client.post(commands_url(session_id), json=request)
    assert response.status == 401
    assert (await response.json())["error_code"] == "UNAUTHORIZED"
    assert await row_counts(conn) == before


async def test_unknown_routes_and_methods_are_json_errors(client: Client, auth: Auth, session_id: str) -> None:
    response = await client.get("/genesis/nothing-here", headers=auth())
    assert response.status == 404
    assert (await response.json())["error_code"] == "NOT_FOUND"
    response = await client.delete(commands_url(session_id), headers=auth())
    assert response.status == 405
    assert (await response.json())["error_code"] == "METHOD_NOT_ALLOWED"
    assert "POST" in response.headers["Allow"]
