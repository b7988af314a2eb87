"""Idempotency-Key: the same key again replays the first answer; with another command it is refused."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from tests.integration.tables import STAGES, Auth, Client, commands_url, confirm, create_session, finish, row_counts


async def _post(
    client: Client, headers: dict[str, str], session_id: str, request: dict[str, Any], key: str | None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    extra = {"Idempotency-Key": key} if key else {}
    response = await client.post(commands_url(session_id), json=request, headers={**headers, **extra})
    return response.status, await response.json(), dict(response.headers)


async def test_async_replay_is_the_same_202_and_stores_nothing_more(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    request = {"command_type": "RequestConceptGeneration", "payload": {"count": 4}}
    status, body, headers = await _post(client, auth(), session_id, request, "key-1")
    assert status == 202
    assert "Idempotent-Replayed" not in headers
    before = await row_counts(conn)
    for _ in range(3):
        again_status, again_body, again_headers = await _post(client, auth(), session_id, request, "key-1")
        assert (again_status, again_body) == (status, body)
        assert again_headers["Location"] == headers["Location"]
        assert again_headers["Idempotent-Replayed"] == "true"
    assert await row_counts(conn) == before
    # Without the key, the same command is a duplicate of the pending one.
    status, body_dup, _ = await _post(client, auth(), session_id, request, None)
    assert (status, body_dup["duplicate_command_id"]) == (409, body["command_id"])


async def test_sync_replay_is_the_first_200_even_after_the_session_moved_on(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    request = {"command_type": "ConfirmStage", "payload": {"stage": "CONCEPT_SELECTION", "data": {"k": 1}}}
    status, first, _ = await _post(client, auth(), session_id, request, "confirm-1")
    assert status == 200
    assert first["session"]["stage"] == "STORY_CONCEPTION"
    await confirm(client, auth(), session_id, "STORY_CONCEPTION")
    before = await row_counts(conn)
    status, again, headers = await _post(client, auth(), session_id, request, "confirm-1")
    assert (status, again) == (200, first)
    assert headers["Idempotent-Replayed"] == "true"
    assert await row_counts(conn) == before


async def test_replay_of_the_final_confirmation_works_on_a_closed_session(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    for stage in STAGES[:-1]:
        await confirm(client, auth(), session_id, stage)
    last = {"command_type": "ConfirmStage", "payload": {"stage": "PLOT_OUTLINE"}}
    status, first, _ = await _post(client, auth(), session_id, last, "the-end")
    assert status == 200
    assert len(first["event_ids"]) == 2
    before = await row_counts(conn)
    again_status, again, _ = await _post(client, auth(), session_id, last, "the-end")
    assert (again_status, again) == (status, first)
    assert await row_counts(conn) == before


async def test_the_same_key_for_another_command_is_422_and_stores_nothing(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    status, first, _ = await _post(
        client, auth(), session_id, {"command_type": "SubmitFeedback", "payload": {"feedback": "a"}}, "shared"
    )
    assert status == 202
    before = await row_counts(conn)
    for other in (
        {"command_type": "SubmitFeedback", "payload": {"feedback": "b"}},
        {"command_type": "RequestConceptGeneration", "payload": {}},
        {"command_type": "ConfirmStage", "payload": {"stage": "CONCEPT_SELECTION"}},
    ):
        status, body, _ = await _post(client, auth(), session_id, other, "shared")
        assert status == 422, body
        assert body["error_code"] == "IDEMPOTENCY_KEY_REUSED"
        assert body["command_id"] == first["command_id"]
    assert await row_counts(conn) == before


async def test_keys_belong_to_one_session_and_refusals_do_not_use_them_up(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    other = await create_session(client, auth())
    request = {"command_type": "RequestConceptGeneration", "payload": {}}
    status_a, body_a, _ = await _post(client, auth(), session_id, request, "k")
    status_b, body_b, _ = await _post(client, auth(), other, request, "k")
    assert (status_a, status_b) == (202, 202)
    assert body_a["command_id"] != body_b["command_id"]

    # A refused command with a key leaves nothing, so the key stays free for a good one.
    wrong = {"command_type": "ConfirmStage", "payload": {"stage": "WORLDVIEW"}}
    status, body, _ = await _post(client, auth(), session_id, wrong, "later")
    assert (status, body["error_code"]) == (409, "STAGE_CONFLICT")
    right = {"command_type": "ConfirmStage", "payload": {"stage": "CONCEPT_SELECTION"}}
    status, body, _ = await _post(client, auth(), session_id, right, "later")
    assert status == 200
    assert await conn.fetchval("SELECT count(*) FROM command_inbox WHERE idempotency_key = 'later'") == 1


async def test_another_user_cannot_replay_a_key(client: Client, auth: Auth, session_id: str) -> None:
    request = {"command_type": "RequestConceptGeneration", "payload": {}}
    assert (await _post(client, auth(), session_id, request, "mine"))[0] == 202
    status, body, _ = await _post(client, auth("bob"), session_id, request, "mine")
    assert (status, body["error_code"]) == (404, "SESSION_NOT_FOUND")


async def test_concurrent_requests_with_one_key_all_get_the_one_answer(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    headers = auth()
    request = {"command_type": "SubmitFeedback", "payload": {"feedback": "at once"}}
    results = await asyncio.gather(*(_post(client, headers, session_id, request, "burst") for _ in range(12)))
    assert {status for status, _, _ in results} == {202}
    assert len({body["command_id"] for _, body, _ in results}) == 1
    assert sum(1 for _, _, h in results if "Idempotent-Replayed" not in h) == 1
    assert await conn.fetchval("SELECT count(*) FROM command_inbox WHERE idempotency_key = 'burst'") == 1
    command_id = uuid.UUID(results[0][1]["command_id"])
    assert await conn.fetchval("SELECT count(*) FROM domain_events WHERE correlation_id = $1", command_id) == 1


async def test_finished_session_replays_every_earlier_key(client: Client, auth: Auth, session_id: str) -> None:
    request = {"command_type": "SubmitFeedback", "payload": {"feedback": "early"}}
    status, first, _ = await _post(client, auth(), session_id, request, "early")
    assert status == 202
    await finish(client, auth(), session_id)
    status, again, _ = await _post(client, auth(), session_id, request, "early")
    assert (status, again) == (202, first)
