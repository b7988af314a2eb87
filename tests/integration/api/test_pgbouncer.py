"""The real `genesis api` behind PgBouncer (Debian 12's 1.18) in transaction pooling, set up as docs/operations.md
says (CONTRACT §7): the pools send no startup parameter the pooler refuses, DB_STATEMENT_CACHE_SIZE=0 keeps asyncpg
from preparing named statements, LISTEN goes direct. Its guards, an event stream, /metrics and 50 concurrent
commands answer as they do directly, never a 5xx. Skipped, saying why, where pgbouncer is not installed."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from genesis.auth.tokens import issue_token
from genesis.migrate import migrate
from genesis.settings import Settings
from tests.api_process import running_api
from tests.conftest import JWT_SECRET
from tests.pgbouncer import Pooler, transaction_pooler
from tests.sse import next_event

pytestmark = pytest.mark.slow
TOPIC = "pooled-domain-events"
SOURCE = "/tests/pgbouncer"
SESSIONS = 10


@pytest.fixture
async def pooler(pg_admin_url: str, database_url: str) -> AsyncIterator[Pooler]:
    # The database defaults every session gets (the pools send no genesis.* startup parameter); PgBouncer as shipped.
    await migrate(database_url, kafka_topic=TOPIC, cloudevents_source=SOURCE, log=lambda _line: None)
    async with transaction_pooler(pg_admin_url) as running:
        yield running


def _pooled_env(database_url: str) -> dict[str, str]:
    return {
        "LISTEN_DATABASE_URL": database_url,  # direct: LISTEN needs a session of its own
        "DB_STATEMENT_CACHE_SIZE": "0",
        "KAFKA_TOPIC": "the-relays-topic",  # the API's own setting: rows are written under migrate's defaults
        "METRICS_REFRESH_INTERVAL": "0.2",
    }


def _commands(sessions: list[str]) -> list[tuple[str, dict[str, Any], dict[str, str], str]]:
    """(session, body, extra headers, expected outcome): 50 commands at once, every guard among them."""
    concepts = {"command_type": "RequestConceptGeneration", "payload": {"count": 2}}
    sent: list[tuple[str, dict[str, Any], dict[str, str], str]] = []
    for n, session in enumerate(sessions):
        sent += [(session, concepts, {}, "accepted or DUPLICATE_COMMAND")] * 3  # the duplicate guard: one wins
        if n < SESSIONS // 2:
            wrong_stage = {"command_type": "ConfirmStage", "payload": {"stage": "WORLDVIEW"}}
            feedback = {"command_type": "SubmitFeedback", "payload": {"feedback": "Fewer dragons."}}
            sent += [(session, wrong_stage, {}, "STAGE_CONFLICT")]
            sent += [(session, feedback, {"Idempotency-Key": f"key-{n}"}, "accepted")] * 2  # the second replays
        else:
            blank = {"command_type": "SubmitFeedback", "payload": {"feedback": "\t\n"}}
            sent += [(session, blank, {}, "VALIDATION_ERROR")]
    return sent


async def _send(
    http: aiohttp.ClientSession, token: str, session: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        f"/genesis/sessions/{session}/commands", json=body, headers={"Authorization": f"Bearer {token}", **headers}
    ) as response:
        return response.status, await response.json()


async def test_the_api_through_transaction_pooling(
    database_url: str, pooler: Pooler, conn: asyncpg.Connection[Any]
) -> None:
    token = issue_token(Settings(jwt_secret=JWT_SECRET), "alice", 600)
    auth = {"Authorization": f"Bearer {token}"}
    async with (
        running_api(pooler.url(database_url), **_pooled_env(database_url)) as api,
        aiohttp.ClientSession(api.base_url, timeout=aiohttp.ClientTimeout(total=60)) as http,
    ):
        sessions = []
        for _ in range(SESSIONS):
            async with http.post("/genesis/sessions", headers=auth) as response:
                assert response.status == 201, await response.text()
                sessions.append(str((await response.json())["id"]))
        stream = await http.get(f"/genesis/sessions/{sessions[0]}/events/stream", headers=auth)
        assert stream.status == 200
        assert (await next_event(stream)).event == "Genesis.Session.Created"

        sent = _commands(sessions)
        assert len(sent) == 50
        answers = await asyncio.gather(*(_send(http, token, s, body, headers) for s, body, headers, _ in sent))
        assert all(status < 500 for status, _ in answers), [a for a in answers if a[0] >= 500][:3]
        outcomes = [("accepted" if status in (200, 202) else body["error_code"]) for status, body in answers]
        for (_, _, _, expected), outcome in zip(sent, outcomes, strict=True):
            assert outcome in expected.split(" or "), (expected, outcome)
        per_session = Counter(s for (s, body, _, _), o in zip(sent, outcomes, strict=True) if o == "accepted")
        assert Counter(o for o in outcomes) == {
            "accepted": SESSIONS + SESSIONS,  # one concept request per session, and both keyed feedbacks of five
            "DUPLICATE_COMMAND": 2 * SESSIONS,
            "STAGE_CONFLICT": SESSIONS // 2,
            "VALIDATION_ERROR": SESSIONS // 2,
        }, per_session
        replayed = [body["command_id"] for (_, _, headers, _), (_, body) in zip(sent, answers, strict=True) if headers]
        assert len(set(replayed)) == SESSIONS // 2  # each key's two answers name one command

        # Off the pool, the guards of a bad token and an unknown type answer as ever.
        async with http.post(f"/genesis/sessions/{sessions[0]}/commands", json={}) as response:
            assert response.status == 401
        status, body = await _send(http, token, sessions[0], {"command_type": "Nope", "payload": {}}, {})
        assert (status, body["error_code"]) == (422, "UNKNOWN_COMMAND")

        # The stream got its session's two new events, through the direct LISTEN.
        seen = {(await next_event(stream, seconds=10)).event for _ in range(2)}
        assert seen == {"Genesis.Session.ConceptGenerationRequested", "Genesis.Session.FeedbackSubmitted"}
        stream.close()

        async with http.get("/readyz") as response:
            assert response.status == 200
        await asyncio.sleep(0.5)  # a refresh of the outbox gauges, on their own pooled connection
        async with http.get("/metrics") as response:
            assert response.status == 200
            assert "\ngenesis_outbox_backlog " in await response.text()

    # What the pooled sessions wrote: the database defaults for topic and ce_source, the API's own name.
    rows = await conn.fetch(
        """SELECT o.topic, o.headers->>'ce_source' AS source, e.metadata->>'source_service' AS service
             FROM event_outbox o JOIN domain_events e USING (event_id)"""
    )
    assert {tuple(r) for r in rows} == {(TOPIC, SOURCE, "genesis-api")}
    assert len(rows) == SESSIONS + SESSIONS + SESSIONS // 2  # the sessions, their concept requests, the feedback
