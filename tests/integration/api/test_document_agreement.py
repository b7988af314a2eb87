"""The OpenAPI document says what the API accepts (CONTRACT §4), request by request: each case below is one that
schemathesis's default checks (positive_data_acceptance / negative_data_rejection) found answered otherwise than
the document said; the server and the document now agree on it."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import pytest

from api.openapi import document
from genesis import commands
from genesis.auth.tokens import AGENT_SCOPE, issue_token
from genesis.settings import Settings
from tests.integration.tables import Auth, Client, commands_url

WAIT = {"resume_handle": {"step": 1}, "timeout_seconds": 3600, "expects": ["SubmitFeedback"]}


@pytest.fixture
def agent(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings, 'concept-agent', 600, AGENT_SCOPE)}"}


def _operation(path: str) -> dict[str, Any]:
    return dict(document()["paths"][path]["post"])


def _header(path: str, name: str) -> dict[str, Any]:
    return next(p for p in _operation(path)["parameters"] if p["name"] == name)


async def _request_concepts(client: Client, auth: Auth, session_id: str, payload: object = None) -> str:
    body = {"command_type": "RequestConceptGeneration", "payload": payload if payload is not None else {}}
    response = await client.post(commands_url(session_id), json=body, headers=auth())
    assert response.status == 202, await response.text()
    return str((await response.json())["command_id"])


async def test_a_malformed_traceparent_is_ignored_and_documented_so(client: Client, auth: Auth) -> None:
    response = await client.post("/genesis/sessions", headers={**auth(), "traceparent": "nonsense"})
    assert response.status == 201, await response.text()
    traceparent = _header("/genesis/sessions", "traceparent")
    assert "pattern" not in traceparent["schema"]
    assert "malformed value is ignored" in traceparent["description"]


@pytest.mark.parametrize("command_type", sorted(commands.PAYLOADS))
async def test_payload_is_required_exactly_where_the_server_refuses_its_absence(
    client: Client, auth: Auth, session_id: str, command_type: str
) -> None:
    response = await client.post(commands_url(session_id), json={"command_type": command_type}, headers=auth())
    branch = next(
        b
        for b in document()["components"]["schemas"]["CommandRequest"]["oneOf"]
        if b["properties"]["command_type"]["const"] == command_type
    )
    if "payload" in branch["required"]:
        assert response.status == 422, await response.text()
        assert (await response.json())["error_code"] == "VALIDATION_ERROR"
    else:
        assert response.status == 202, await response.text()


async def test_confirm_stage_without_payload_is_refused_as_the_document_says(
    client: Client, auth: Auth, session_id: str
) -> None:
    response = await client.post(commands_url(session_id), json={"command_type": "ConfirmStage"}, headers=auth())
    assert response.status == 422
    assert "payload.stage" in (await response.json())["fields"]


@pytest.mark.parametrize(("sent", "accepted"), [(6.0, True), (6, True), (6.5, False), (True, False), ("6", False)])
async def test_progress_takes_an_integral_number_only(
    client: Client, auth: Auth, session_id: str, agent: dict[str, str], sent: object, accepted: bool
) -> None:
    command_id = await _request_concepts(client, auth, session_id)
    response = await client.post(f"/genesis/tasks/{command_id}/progress", json={"progress": sent}, headers=agent)
    if accepted:
        assert response.status == 200, await response.text()
        assert (await response.json())["progress"] == 6
    else:
        assert response.status == 422
        assert "progress" in (await response.json())["fields"]


async def test_timeout_seconds_takes_an_integral_float(
    client: Client, auth: Auth, session_id: str, agent: dict[str, str]
) -> None:
    command_id = await _request_concepts(client, auth, session_id)
    refused = await client.post(
        f"/genesis/tasks/{command_id}/wait", json={**WAIT, "timeout_seconds": 3600.5}, headers=agent
    )
    assert refused.status == 422
    response = await client.post(
        f"/genesis/tasks/{command_id}/wait", json={**WAIT, "timeout_seconds": 3600.0}, headers=agent
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["timeout_seconds"] == 3600


async def test_count_takes_an_integral_float_and_is_stored_as_an_integer(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    command_id = await _request_concepts(client, auth, session_id, {"count": 4.0, "preferences": {"tone": 1.5}})
    stored = await conn.fetchval("SELECT payload::text FROM command_inbox WHERE id = $1", uuid.UUID(command_id))
    assert stored == '{"count": 4, "preferences": {"tone": 1.5}}'
    for count in (4.5, True, "4"):
        response = await client.post(
            commands_url(session_id),
            json={"command_type": "RequestConceptGeneration", "payload": {"count": count}},
            headers=auth(),
        )
        assert response.status == 422, count


@pytest.mark.parametrize("expects", [[""], ["Nope"], ["SubmitFeedback", "nope"]])
async def test_expects_names_command_types_of_the_catalogue(
    client: Client, auth: Auth, session_id: str, agent: dict[str, str], expects: list[str]
) -> None:
    schema = document()["components"]["schemas"]["TaskWait"]["properties"]["expects"]
    assert schema["items"]["enum"] == list(commands.PAYLOADS)
    assert not set(expects) <= set(schema["items"]["enum"])  # the document refuses it: so does the server
    command_id = await _request_concepts(client, auth, session_id)
    response = await client.post(f"/genesis/tasks/{command_id}/wait", json={**WAIT, "expects": expects}, headers=agent)
    assert response.status == 422
    assert "expects" in (await response.json())["fields"]


async def test_every_command_type_of_the_enum_is_one_the_server_waits_for(
    client: Client, auth: Auth, session_id: str, agent: dict[str, str]
) -> None:
    command_id = await _request_concepts(client, auth, session_id)
    expects = document()["components"]["schemas"]["TaskWait"]["properties"]["expects"]["items"]["enum"]
    response = await client.post(f"/genesis/tasks/{command_id}/wait", json={**WAIT, "expects": expects}, headers=agent)
    assert response.status == 201, await response.text()


@pytest.mark.parametrize(("key", "accepted"), [("a b", False), ("é", False), ("k" * 255, True), ("a!~Z-0", True)])
async def test_the_idempotency_key_pattern_is_the_one_the_server_enforces(
    client: Client, auth: Auth, session_id: str, key: str, accepted: bool
) -> None:
    schema = _header("/genesis/sessions/{session_id}/commands", "Idempotency-Key")["schema"]
    assert bool(re.fullmatch(schema["pattern"], key)) is accepted
    body = {"command_type": "RequestConceptGeneration", "payload": {}}
    headers = {**auth(), "Idempotency-Key": key.encode().decode("latin-1")}
    response = await client.post(commands_url(session_id), json=body, headers=headers)
    assert (response.status == 202) is accepted, await response.text()


def test_every_operation_that_takes_an_idempotency_key_documents_its_pattern() -> None:
    taking = [
        (path, parameter)
        for path, item in document()["paths"].items()
        for operation in item.values()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "Idempotency-Key"
    ]
    assert taking
    for path, parameter in taking:
        assert parameter["schema"]["pattern"] == r"^[\x21-\x7e]{1,255}$", path


@pytest.mark.parametrize(("data", "status"), [(None, 201), (b"", 201), (b"{}", 201), (b" ", 400), (b"\n\t", 400)])
async def test_a_session_body_is_optional_but_one_that_is_sent_is_json(
    client: Client, auth: Auth, data: bytes | None, status: int
) -> None:
    headers = {**auth(), "Content-Type": "application/json"}
    response = await client.post("/genesis/sessions", data=data, headers=headers)
    assert response.status == status, await response.text()
