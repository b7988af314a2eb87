"""The command path over HTTP against a real PostgreSQL: status codes, bodies, and what is stored."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest

from tests.integration.tables import STAGES, Auth, Client, commands_url, create_session, finish, row_counts


async def test_async_command_is_accepted_with_its_event_outbox_and_task(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    response = await client.post(
        f"/genesis/sessions/{session_id}/commands",
        json={"command_type": "RequestConceptGeneration", "payload": {"count": 2}},
        headers=auth(),
    )
    assert response.status == 202
    body = await response.json()
    assert body["status"] == "RECEIVED"
    assert response.headers["Location"] == f"/genesis/sessions/{session_id}/commands/{body['command_id']}"

    event = await conn.fetchrow("SELECT * FROM domain_events WHERE correlation_id = $1", uuid.UUID(body["command_id"]))
    assert event is not None
    assert event["event_type"] == "Genesis.Session.ConceptGenerationRequested"
    assert event["aggregate_version"] == 2
    assert await conn.fetchval("SELECT count(*) FROM event_outbox WHERE event_id = $1", event["event_id"]) == 1
    assert await conn.fetchval("SELECT count(*) FROM async_tasks WHERE command_id = $1", event["correlation_id"]) == 1


async def test_fifty_identical_commands_one_accepted_and_49_exact_409(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    headers = auth()
    request = {"command_type": "RequestConceptGeneration", "payload": {}}

    async def send() -> tuple[int, dict[str, Any]]:
        response = await client.post(f"/genesis/sessions/{session_id}/commands", json=request, headers=headers)
        return response.status, await response.json()

    results = await asyncio.gather(*(send() for _ in range(50)))
    accepted = [body for status, body in results if status == 202]
    refused = [body for status, body in results if status == 409]
    assert len(accepted) == 1
    assert len(refused) == 49
    winner = accepted[0]["command_id"]
    for body in refused:
        assert body == {
            "error_code": "DUPLICATE_COMMAND",
            "message": "Command already processing",
            "duplicate_command_id": winner,
        }
    assert (
        await conn.fetchval("SELECT count(*) FROM command_inbox WHERE command_type = 'RequestConceptGeneration'") == 1
    )


# --- sessions ---------------------------------------------------------------------------------


async def test_session_is_created_without_a_body(client: Client, auth: Auth, conn: asyncpg.Connection[Any]) -> None:
    response = await client.post("/genesis/sessions", headers=auth("alice"))
    assert response.status == 201
    body = await response.json()
    assert body["user_id"] == "alice"
    assert (body["status"], body["stage"], body["version"], body["stage_data"]) == (
        "IN_PROGRESS",
        "CONCEPT_SELECTION",
        1,
        {},
    )
    assert response.headers["Location"] == f"/genesis/sessions/{body['id']}"
    created = await conn.fetchrow("SELECT * FROM domain_events WHERE aggregate_id = $1", uuid.UUID(body["id"]))
    assert created is not None
    assert created["event_type"] == "Genesis.Session.Created"
    assert created["aggregate_version"] == 1
    assert await conn.fetchval("SELECT count(*) FROM event_outbox WHERE event_id = $1", created["event_id"]) == 1


async def test_session_is_created_with_an_object_body(client: Client, auth: Auth) -> None:
    response = await client.post("/genesis/sessions", json={"title": "ignored"}, headers=auth())
    assert response.status == 201
    response = await client.post("/genesis/sessions", json={}, headers=auth())
    assert response.status == 201


@pytest.mark.parametrize("body", [[], [1, 2], "text", 3, None])
async def test_session_create_with_a_non_object_body_is_422_and_stores_nothing(
    client: Client, auth: Auth, conn: asyncpg.Connection[Any], body: object
) -> None:
    before = await row_counts(conn)
    response = await client.post("/genesis/sessions", data=json.dumps(body), headers=_json(auth()))
    assert response.status == 422
    assert await response.json() == {
        "error_code": "VALIDATION_ERROR",
        "message": "Body must be a JSON object",
        "fields": {"body": "must be an object"},
    }
    assert await row_counts(conn) == before


async def test_get_session_shows_its_owner_the_session(client: Client, auth: Auth, session_id: str) -> None:
    response = await client.get(f"/genesis/sessions/{session_id}", headers=auth())
    assert response.status == 200
    body = await response.json()
    assert body["id"] == session_id
    assert {"id", "status", "stage", "version", "stage_data", "created_at", "updated_at"} <= set(body)


@pytest.mark.parametrize(
    ("path_id", "user"),
    [("own", "bob"), (str(uuid.uuid4()), "alice"), ("not-a-uuid", "alice"), ("", "alice")],
    ids=["other-user", "unknown-id", "malformed-id", "empty-id"],
)
async def test_session_that_is_not_yours_does_not_exist(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any], path_id: str, user: str
) -> None:
    target = session_id if path_id == "own" else path_id
    before = await row_counts(conn)
    responses = [await client.get(f"/genesis/sessions/{target}", headers=auth(user))]
    for request in (
        {"command_type": "RequestConceptGeneration", "payload": {}},  # async
        {"command_type": "ConfirmStage", "payload": {"stage": "CONCEPT_SELECTION"}},  # sync
    ):
        responses.append(await client.post(commands_url(target), json=request, headers=auth(user)))
    for response in responses:
        body = await response.json()
        if path_id == "":  # /genesis/sessions/ is no route at all
            assert response.status in (404, 405), body
            continue
        assert response.status == 404, body
        assert body["error_code"] == "SESSION_NOT_FOUND"
    assert await row_counts(conn) == before


# --- commands ---------------------------------------------------------------------------------


async def test_confirm_stage_is_sync_200_with_the_new_session(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    response = await client.post(
        commands_url(session_id),
        json={"command_type": "ConfirmStage", "payload": {"stage": "CONCEPT_SELECTION", "data": {"pick": 2}}},
        headers=auth(),
    )
    assert response.status == 200
    assert "Location" not in response.headers
    body = await response.json()
    assert set(body) == {"command_id", "status", "message", "event_ids", "session"}
    assert body["status"] == "COMPLETED"
    assert body["message"] == "ConfirmStage completed"
    assert body["session"]["stage"] == "STORY_CONCEPTION"
    assert body["session"]["status"] == "IN_PROGRESS"
    assert body["session"]["version"] == 2
    assert body["session"]["stage_data"] == {"CONCEPT_SELECTION": {"pick": 2}}
    [event_id] = body["event_ids"]
    event = await conn.fetchrow("SELECT * FROM domain_events WHERE event_id = $1", uuid.UUID(event_id))
    assert event is not None
    assert event["event_type"] == "Genesis.Session.StageConfirmed"
    assert str(event["correlation_id"]) == body["command_id"]
    command = await conn.fetchrow("SELECT * FROM command_inbox WHERE id = $1", uuid.UUID(body["command_id"]))
    assert command is not None
    assert (command["status"], command["completed_at"] is not None) == ("COMPLETED", True)
    assert await conn.fetchval("SELECT count(*) FROM async_tasks") == 0

    stored = await (await client.get(f"/genesis/sessions/{session_id}", headers=auth())).json()
    assert stored == body["session"]


async def test_leaving_plot_outline_finishes_the_session(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    last = await finish(client, auth(), session_id)
    assert last["session"]["stage"] == "FINISHED"
    assert last["session"]["status"] == "COMPLETED"
    assert last["session"]["version"] == 1 + len(STAGES) + 1
    assert set(last["session"]["stage_data"]) == set(STAGES)
    confirmed, finished = (uuid.UUID(e) for e in last["event_ids"])
    types = dict(await conn.fetch("SELECT event_id, event_type FROM domain_events WHERE event_id = ANY($1)", [
        confirmed, finished
    ]))  # fmt: skip
    assert types == {confirmed: "Genesis.Session.StageConfirmed", finished: "Genesis.Session.Finished"}


async def test_get_command_shows_status_and_timestamps(client: Client, auth: Auth, session_id: str) -> None:
    response = await client.post(
        commands_url(session_id),
        json={"command_type": "SubmitFeedback", "payload": {"feedback": "more moons"}},
        headers=auth(),
    )
    assert response.status == 202
    accepted = await response.json()
    assert accepted == {
        "command_id": accepted["command_id"],
        "status": "RECEIVED",
        "message": "SubmitFeedback accepted",
    }
    status = await client.get(response.headers["Location"], headers=auth())
    assert status.status == 200
    body = await status.json()
    assert body["command_id"] == accepted["command_id"]
    assert body["session_id"] == session_id
    assert (body["command_type"], body["status"], body["error"], body["completed_at"]) == (
        "SubmitFeedback",
        "RECEIVED",
        None,
        None,
    )
    assert body["payload"] == {"feedback": "more moons"}
    assert body["created_at"]
    assert body["updated_at"]


async def test_get_command_that_does_not_exist_is_404(client: Client, auth: Auth, session_id: str) -> None:
    accepted = await client.post(
        commands_url(session_id), json={"command_type": "RequestConceptGeneration", "payload": {}}, headers=auth()
    )
    command_id = (await accepted.json())["command_id"]
    other = await create_session(client, auth())

    async def get(session: str, command: str, user: str = "alice") -> tuple[int, str]:
        response = await client.get(f"{commands_url(session)}/{command}", headers=auth(user))
        return response.status, (await response.json())["error_code"]

    assert await get(session_id, str(uuid.uuid4())) == (404, "COMMAND_NOT_FOUND")
    assert await get(session_id, "not-a-uuid") == (404, "COMMAND_NOT_FOUND")
    assert await get(other, command_id) == (404, "COMMAND_NOT_FOUND")  # another session's command
    assert await get(session_id, command_id, user="bob") == (404, "SESSION_NOT_FOUND")
    assert await get(str(uuid.uuid4()), command_id) == (404, "SESSION_NOT_FOUND")
    response = await client.get(f"{commands_url(session_id)}/{command_id}", headers=auth())
    assert response.status == 200
    assert (await response.json())["command_id"] == command_id


def _json(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Content-Type": "application/json"}
