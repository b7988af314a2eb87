"""POST /genesis/tasks/{command_id}/wait (issue 25) over HTTP on a real PostgreSQL: the agent scope, bodies, 404,
201 and its idempotent repeat, 409 ALREADY_WAITING, resume by the user's next expected command (metadata.resumes
on its event) and the owner-only `waiting` list of the session."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from genesis.auth.tokens import AGENT_SCOPE, issue_token
from genesis.settings import Settings
from tests.integration.tables import Auth, Client, commands_url, row_counts

BODY = {"resume_handle": {"concepts": [{"title": "A"}]}, "timeout_seconds": 3600, "expects": ["SubmitFeedback"]}


@pytest.fixture
def agent(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings, 'concept-agent', 600, AGENT_SCOPE)}"}


def _wait(command_id: str) -> str:
    return f"/genesis/tasks/{command_id}/wait"


async def _request_concepts(client: Client, auth: Auth, session_id: str) -> str:
    response = await client.post(
        commands_url(session_id), json={"command_type": "RequestConceptGeneration", "payload": {}}, headers=auth()
    )
    assert response.status == 202, await response.text()
    return str((await response.json())["command_id"])


async def test_park_then_resume_over_http(
    client: Client, auth: Auth, session_id: str, agent: dict[str, str], conn: asyncpg.Connection[Any]
) -> None:
    command_id = await _request_concepts(client, auth, session_id)
    response = await client.post(_wait(command_id), json=BODY, headers=agent)
    assert response.status == 201, await response.text()
    handle = await response.json()
    assert handle["status"] == "PAUSED"
    assert handle["correlation_id"] == command_id
    assert handle["session_id"] == session_id
    assert handle["resume_payload"] is None
    assert handle["resumed_by"] is None

    before = await row_counts(conn)
    again = await client.post(_wait(command_id), json=BODY, headers=agent)
    assert again.status == 201
    assert await again.json() == handle
    other = await client.post(_wait(command_id), json={**BODY, "timeout_seconds": 60}, headers=agent)
    assert other.status == 409
    assert (await other.json())["error_code"] == "ALREADY_WAITING"
    assert await row_counts(conn) == before

    session = await (await client.get(f"/genesis/sessions/{session_id}", headers=auth())).json()
    assert [w["handle_id"] for w in session["waiting"]] == [handle["handle_id"]]
    stranger = await client.get(f"/genesis/sessions/{session_id}", headers=auth("mallory"))
    assert stranger.status == 404  # the waiting list is the owner's only

    feedback = await client.post(
        commands_url(session_id),
        json={"command_type": "SubmitFeedback", "payload": {"feedback": "bolder"}},
        headers=auth(),
    )
    assert feedback.status == 202, await feedback.text()
    resumed_by = uuid.UUID((await feedback.json())["command_id"])
    metadata = await conn.fetchval("SELECT metadata FROM domain_events WHERE correlation_id = $1", resumed_by)
    assert metadata["resumes"] == {
        "handle_id": handle["handle_id"],
        "correlation_id": command_id,
        "resume_handle": BODY["resume_handle"],
    }
    session = await (await client.get(f"/genesis/sessions/{session_id}", headers=auth())).json()
    assert session["waiting"] == []
    answer = await (await client.post(_wait(command_id), json=BODY, headers=agent)).json()
    assert answer["status"] == "RESUMED"
    assert answer["resumed_by"] == str(resumed_by)
    assert answer["resume_payload"] == {"feedback": "bolder"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BODY, "timeout_seconds": 0}, "timeout_seconds"),
        ({**BODY, "timeout_seconds": 604801}, "timeout_seconds"),
        ({**BODY, "expects": []}, "expects"),
        ({**BODY, "expects": ["Nope"]}, "expects"),
        ({**BODY, "resume_handle": [1]}, "resume_handle"),
        ({**BODY, "extra": 1}, "extra"),
    ],
)
async def test_bad_bodies_are_422_and_change_nothing(
    client: Client,
    auth: Auth,
    session_id: str,
    agent: dict[str, str],
    conn: asyncpg.Connection[Any],
    body: dict[str, Any],
    field: str,
) -> None:
    command_id = await _request_concepts(client, auth, session_id)
    before = await row_counts(conn)
    response = await client.post(_wait(command_id), json=body, headers=agent)
    assert response.status == 422, await response.text()
    refused = await response.json()
    assert refused["error_code"] == "VALIDATION_ERROR"
    assert field in refused["fields"]
    assert await row_counts(conn) == before


async def test_unknown_command_is_404_and_the_user_scope_is_403(
    client: Client, auth: Auth, session_id: str, agent: dict[str, str]
) -> None:
    missing = await client.post(_wait(str(uuid.uuid4())), json=BODY, headers=agent)
    assert missing.status == 404
    assert (await missing.json())["error_code"] == "COMMAND_NOT_FOUND"
    command_id = await _request_concepts(client, auth, session_id)
    forbidden = await client.post(_wait(command_id), json=BODY, headers=auth())
    assert forbidden.status == 403
    assert (await forbidden.json())["error_code"] == "FORBIDDEN"


async def test_a_wait_on_a_closed_session_is_409_session_closed(
    client: Client, auth: Auth, session_id: str, agent: dict[str, str], conn: asyncpg.Connection[Any]
) -> None:
    command_id = await _request_concepts(client, auth, session_id)
    await conn.execute("UPDATE genesis_sessions SET status = 'ABANDONED' WHERE id = $1::uuid", session_id)
    before = await row_counts(conn)
    refused = await client.post(_wait(command_id), json=BODY, headers=agent)
    assert refused.status == 409, await refused.text()
    assert (await refused.json())["error_code"] == "SESSION_CLOSED"
    assert await row_counts(conn) == before
