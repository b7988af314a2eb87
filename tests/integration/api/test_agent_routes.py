"""The agents' routes (CONTRACT §9) against a real PostgreSQL: scope, bodies, idempotent completion, progress on SSE."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from genesis.auth.tokens import AGENT_SCOPE, issue_token
from genesis.settings import Settings
from tests.integration.tables import Auth, Client, commands_url, row_counts
from tests.sse import next_event


@pytest.fixture
def agent(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings, 'concept-agent', 600, AGENT_SCOPE)}"}


async def _request_concepts(client: Client, auth: Auth, session_id: str, count: int = 2) -> str:
    response = await client.post(
        commands_url(session_id),
        json={"command_type": "RequestConceptGeneration", "payload": {"count": count}},
        headers=auth(),
    )
    assert response.status == 202, await response.text()
    return str((await response.json())["command_id"])


def _progress(command_id: str) -> str:
    return f"/genesis/tasks/{command_id}/progress"


def _complete(command_id: str) -> str:
    return f"/genesis/tasks/{command_id}/complete"


async def test_without_the_agent_scope_both_routes_are_forbidden(
    client: Client, auth: Auth, session_id: str, settings: Settings, conn: asyncpg.Connection[Any]
) -> None:
    command_id = await _request_concepts(client, auth, session_id)
    before = await row_counts(conn)
    other_scope = {"Authorization": f"Bearer {issue_token(settings, 'alice', 600, 'genesis:reader')}"}
    for headers in (auth(), other_scope):
        for url, body in ((_progress(command_id), {"progress": 5}), (_complete(command_id), {"outcome": "COMPLETED"})):
            response = await client.post(url, json=body, headers=headers)
            assert response.status == 403
            refused = await response.json()
            assert refused["error_code"] == "FORBIDDEN"
            assert refused["required_scope"] == AGENT_SCOPE
    assert (await client.post(_progress(command_id), json={"progress": 5})).status == 401
    assert await row_counts(conn) == before
    status = await conn.fetchval("SELECT status FROM command_inbox WHERE id = $1", uuid.UUID(command_id))
    assert status == "RECEIVED"


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("progress", {"progress": 101}, "progress"),
        ("progress", {"progress": -1}, "progress"),
        ("progress", {"progress": 50.5}, "progress"),  # 50.0 is 50 (JSON Schema's integer)
        ("progress", {"progress": "50"}, "progress"),
        ("progress", {"progress": True}, "progress"),
        ("progress", {}, "progress"),
        ("progress", {"progress": 5, "message": "x" * 1001}, "message"),
        ("progress", {"progress": 5, "extra": 1}, "extra"),
        ("complete", {"outcome": "DONE"}, "outcome"),
        ("complete", {"outcome": "COMPLETED", "result": [1]}, "result"),
        ("complete", {"outcome": "COMPLETED", "result": "ok"}, "result"),
    ],
)
async def test_bodies_are_validated(
    client: Client, auth: Auth, session_id: str, agent: dict[str, str], route: str, body: Any, field: str
) -> None:
    command_id = await _request_concepts(client, auth, session_id)
    response = await client.post(f"/genesis/tasks/{command_id}/{route}", json=body, headers=agent)
    assert response.status == 422, await response.text()
    refused = await response.json()
    assert refused["error_code"] == "VALIDATION_ERROR"
    assert field in refused["fields"]


async def test_a_result_over_the_body_limit_is_413(
    client: Client, auth: Auth, session_id: str, agent: dict[str, str]
) -> None:
    command_id = await _request_concepts(client, auth, session_id)
    body = {"outcome": "COMPLETED", "result": {"text": "x" * 70_000}}
    response = await client.post(_complete(command_id), json=body, headers=agent)
    assert response.status == 413
    assert (await response.json())["error_code"] == "PAYLOAD_TOO_LARGE"


async def test_unknown_commands_are_404(client: Client, agent: dict[str, str]) -> None:
    for url in (_progress(str(uuid.uuid4())), _complete(str(uuid.uuid4())), _progress("not-a-uuid")):
        body = {"progress": 1} if url.endswith("progress") else {"outcome": "FAILED"}
        response = await client.post(url, json=body, headers=agent)
        assert response.status == 404, url
        assert (await response.json())["error_code"] == "COMMAND_NOT_FOUND"


async def test_progress_turns_the_command_processing_and_reaches_the_stream_without_an_id(
    client: Client, auth: Auth, session_id: str, agent: dict[str, str], conn: asyncpg.Connection[Any]
) -> None:
    stream = await client.get(f"/genesis/sessions/{session_id}/events/stream", headers=auth())
    assert (await next_event(stream)).event == "Genesis.Session.Created"
    command_id = await _request_concepts(client, auth, session_id)
    assert (await next_event(stream)).event == "Genesis.Session.ConceptGenerationRequested"
    outbox_before = await conn.fetchval("SELECT count(*) FROM event_outbox")

    response = await client.post(_progress(command_id), json={"progress": 30, "message": "Sketching"}, headers=agent)
    assert response.status == 200, await response.text()
    assert await response.json() == {"command_id": command_id, "command_status": "PROCESSING", "progress": 30}
    frame = await next_event(stream, seconds=10)
    assert (frame.id, frame.event, frame.data) == (
        None,
        "task-progress",
        {"command_id": command_id, "progress": 30, "message": "Sketching"},
    )
    task = await conn.fetchrow("SELECT status, progress FROM async_tasks WHERE command_id = $1", uuid.UUID(command_id))
    assert task is not None
    assert tuple(task) == ("RUNNING", 30)
    command = await client.get(f"{commands_url(session_id)}/{command_id}", headers=auth())
    assert (await command.json())["status"] == "PROCESSING"

    # The duplicate guard covers PROCESSING.
    duplicate = await client.post(
        commands_url(session_id), json={"command_type": "RequestConceptGeneration", "payload": {}}, headers=auth()
    )
    assert duplicate.status == 409
    assert (await duplicate.json())["duplicate_command_id"] == command_id

    assert (await client.post(_progress(command_id), json={"progress": 70}, headers=agent)).status == 200
    frame = await next_event(stream, seconds=10)
    assert frame.data == {"command_id": command_id, "progress": 70, "message": ""}
    # Not a domain event: nothing went to the outbox, and the session's version did not move.
    assert await conn.fetchval("SELECT count(*) FROM event_outbox") == outbox_before
    assert await conn.fetchval("SELECT version FROM genesis_sessions WHERE id = $1", uuid.UUID(session_id)) == 2

    # Not replayed: a reconnecting stream gets the events only.
    stream.close()
    resumed = await client.get(f"/genesis/sessions/{session_id}/events/stream", headers=auth())
    replayed = [await next_event(resumed) for _ in range(2)]
    assert [m.event for m in replayed] == ["Genesis.Session.Created", "Genesis.Session.ConceptGenerationRequested"]
    done = await client.post(_complete(command_id), json={"outcome": "COMPLETED", "result": {"n": 1}}, headers=agent)
    assert done.status == 200
    assert (await next_event(resumed, seconds=10)).event == "Genesis.Session.ConceptProposed"
    resumed.close()


async def test_completion_is_idempotent_over_http(
    client: Client, auth: Auth, session_id: str, agent: dict[str, str], conn: asyncpg.Connection[Any]
) -> None:
    command_id = await _request_concepts(client, auth, session_id)
    body = {"outcome": "COMPLETED", "result": {"concepts": [{"title": "A"}], "generator": "test"}}
    first = await client.post(_complete(command_id), json=body, headers=agent)
    assert first.status == 200, await first.text()
    answer = await first.json()
    assert answer["command_id"] == command_id
    assert answer["command_status"] == "COMPLETED"
    before = await row_counts(conn)

    again = await client.post(_complete(command_id), json=body, headers=agent)
    assert again.status == 200
    assert await again.json() == answer
    assert await row_counts(conn) == before

    different = await client.post(_complete(command_id), json={"outcome": "FAILED"}, headers=agent)
    assert different.status == 409
    refused = await different.json()
    assert (refused["error_code"], refused["command_status"]) == ("COMMAND_NOT_PENDING", "COMPLETED")
    late = await client.post(_progress(command_id), json={"progress": 99}, headers=agent)
    assert late.status == 409
    assert (await late.json())["error_code"] == "COMMAND_NOT_PENDING"
    assert await row_counts(conn) == before

    event = await conn.fetchrow(
        "SELECT event_type, payload FROM domain_events WHERE event_id = $1", uuid.UUID(answer["event_id"])
    )
    assert event is not None
    assert event["event_type"] == "Genesis.Session.ConceptProposed"
    assert event["payload"]["result"] == body["result"]
    # The duplicate guard is released: the same command type is accepted again.
    assert await _request_concepts(client, auth, session_id) != command_id
