"""Group commit in the API (issue 21, CONTRACT §3): commands queued together share one transaction, each with its
own answer; a duplicate pair in one batch is one 202 and one 409 with the first's id; a killed API leaves no
answered command unrecorded and nothing half-recorded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import aiohttp
import asyncpg

from api.batches import Batcher, Command
from genesis import errors
from genesis.auth.tokens import issue_token
from genesis.local.services import free_port, wait_for_port
from genesis.settings import Settings
from tests.conftest import JWT_SECRET
from tests.integration.tables import row_counts
from tests.processes import genesis_command

Pool: TypeAlias = "asyncpg.Pool[Any]"


def _command(session: str, command_type: str, payload: dict[str, Any], key: str | None = None) -> Command:
    return Command(uuid.UUID(session), command_type, payload, "alice", key, None, None, None)


async def _session(pool: Pool, user: str = "alice") -> str:
    return str((await pool.fetchval("SELECT create_session($1)", user))["id"])


async def _outcomes(batcher: Batcher, commands: list[Command]) -> list[Any]:
    # Queued in one turn of the event loop, before the drainer it starts gets to run: one batch.
    return await asyncio.gather(*(batcher.submit(c) for c in commands), return_exceptions=True)


async def test_a_batch_answers_each_command_and_records_the_accepted_ones_in_one_transaction(
    pool: Pool, conn: asyncpg.Connection[Any]
) -> None:
    a, b = await _session(pool), await _session(pool)
    batcher = Batcher(pool, drainers=2)
    replayed = await batcher.submit(_command(b, "SubmitFeedback", {"feedback": "x"}, key="k"))
    before = await row_counts(conn)
    outcomes = await _outcomes(batcher, [
        _command(a, "RequestConceptGeneration", {}),
        _command(a, "RequestConceptGeneration", {}),  # duplicate of the first, in the same batch
        _command(a, "ConfirmStage", {"stage": "WORLDVIEW"}),
        _command(str(uuid.uuid4()), "SubmitFeedback", {"feedback": "y"}),
        _command(b, "SubmitFeedback", {"feedback": "x"}, key="k"),
        _command(b, "SubmitFeedback", {"feedback": "other"}, key="k"),
        _command(a, "ConfirmStage", {"stage": "CONCEPT_SELECTION"}),
    ])  # fmt: skip
    accepted, duplicate, stage, unknown, replay, reused, confirmed = outcomes
    assert accepted["command_status"] == "RECEIVED"
    assert isinstance(duplicate, errors.DuplicateCommand)
    assert duplicate.body() == {"error_code": "DUPLICATE_COMMAND", "message": "Command already processing",
                                "duplicate_command_id": str(accepted["command_id"])}  # fmt: skip
    assert isinstance(stage, errors.StageConflict)
    assert stage.body() == {"error_code": "STAGE_CONFLICT",
                            "message": "Cannot confirm WORLDVIEW; the session is at CONCEPT_SELECTION",
                            "current_stage": "CONCEPT_SELECTION", "requested_stage": "WORLDVIEW"}  # fmt: skip
    assert isinstance(unknown, errors.SessionNotFound)
    assert replay["replayed"]
    assert replay["command_id"] == replayed["command_id"]
    assert isinstance(reused, errors.IdempotencyKeyReused)
    assert reused.body()["command_id"] == str(replayed["command_id"])
    assert confirmed["command_status"] == "COMPLETED"
    assert confirmed["session"]["stage"] == "STORY_CONCEPTION"

    # The two accepted commands, whole, and nothing of the refused ones: written by one transaction.
    after = await row_counts(conn)
    assert {t: after[t] - before[t] for t in after} == {
        "genesis_sessions": 0, "command_inbox": 2, "domain_events": 2, "event_outbox": 2, "async_tasks": 1,
        "flow_resume_handles": 0,
    }  # fmt: skip
    # now() is the transaction's start: one value for both (xmin would differ, each command has its savepoint).
    writers = await pool.fetchval(
        "SELECT count(DISTINCT metadata->>'timestamp') FROM domain_events WHERE correlation_id = ANY($1::uuid[])",
        [accepted["command_id"], confirmed["command_id"]],
    )
    assert writers == 1


async def test_a_command_the_batch_cannot_take_is_answered_alone_and_spares_its_neighbours(pool: Pool) -> None:
    session, other = await _session(pool), await _session(pool)
    batcher = Batcher(pool, drainers=1)
    # NaN is not JSON: the batch's one jsonb argument fails as a whole, twice; then each command runs alone.
    good, odd = await _outcomes(batcher, [
        _command(session, "SubmitFeedback", {"feedback": "fine"}),
        _command(other, "SubmitFeedback", {"feedback": "odd", "score": float("nan")}),
    ])  # fmt: skip
    assert good["command_status"] == "RECEIVED"
    assert isinstance(odd, Exception)
    assert await pool.fetchval("SELECT count(*) FROM command_inbox WHERE session_id = $1::uuid", other) == 1


async def test_thirty_identical_commands_at_once_one_202_and_29_exact_409(pool: Pool, database_url: str) -> None:
    session = await _session(pool)
    async with _api(database_url) as (base_url, _):
        headers = {"Authorization": f"Bearer {issue_token(Settings(jwt_secret=JWT_SECRET), 'alice')}"}
        url = f"{base_url}/genesis/sessions/{session}/commands"
        async with aiohttp.ClientSession() as http:

            async def send() -> tuple[int, dict[str, Any]]:
                body = {"command_type": "RequestConceptGeneration", "payload": {}}
                async with http.post(url, json=body, headers=headers) as response:
                    return response.status, await response.json()

            results = await asyncio.gather(*(send() for _ in range(30)))
    accepted = [body for status, body in results if status == 202]
    assert len(accepted) == 1
    refused = [body for status, body in results if status != 202]
    assert refused == [{"error_code": "DUPLICATE_COMMAND", "message": "Command already processing",
                        "duplicate_command_id": accepted[0]["command_id"]}] * 29  # fmt: skip


@contextlib.asynccontextmanager
async def _api(database_url: str) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real `genesis api`; the test may SIGKILL it (tests/api_process.py would then fail on its exit code)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "JWT_SECRET": JWT_SECRET, "API_PORT": str(port),
           "SERVICE_TYPE": "api", "LOG_LEVEL": "WARNING"}  # fmt: skip
    process = subprocess.Popen([genesis_command()], env=env, stderr=subprocess.DEVNULL)  # noqa: ASYNC220 - a server
    try:
        await asyncio.to_thread(wait_for_port, port, process=process)
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 20)


WITHOUT_EVENTS = """
    SELECT count(*) FROM command_inbox c
     WHERE NOT EXISTS (SELECT 1 FROM domain_events e WHERE e.correlation_id = c.id)
        OR (c.command_type = 'SubmitFeedback'
            AND NOT EXISTS (SELECT 1 FROM async_tasks t WHERE t.command_id = c.id))
"""
WITHOUT_OUTBOX = """
    SELECT count(*) FROM domain_events e
     WHERE NOT EXISTS (SELECT 1 FROM event_outbox o WHERE o.event_id = e.event_id)
"""
WITH_GAPS = """
    SELECT count(*) FROM genesis_sessions s
     WHERE s.version <> (SELECT count(*) FROM domain_events e WHERE e.aggregate_id = s.id)
        OR s.version <> (SELECT max(e.aggregate_version) FROM domain_events e WHERE e.aggregate_id = s.id)
"""


async def test_the_api_killed_mid_batch_leaves_every_answered_command_recorded_and_none_half(
    pool: Pool, database_url: str
) -> None:
    answered_before_kill = 40
    sessions = [await _session(pool) for _ in range(48)]
    headers = {"Authorization": f"Bearer {issue_token(Settings(jwt_secret=JWT_SECRET), 'alice')}"}
    answered: list[str] = []
    async with _api(database_url) as (base_url, process):
        async with aiohttp.ClientSession() as http:

            async def client(session: str) -> None:
                url = f"{base_url}/genesis/sessions/{session}/commands"
                stages = ("CONCEPT_SELECTION", "STORY_CONCEPTION", "WORLDVIEW", "CHARACTERS", "PLOT_OUTLINE")
                for n in range(40):
                    body = (
                        {"command_type": "SubmitFeedback", "payload": {"feedback": str(n)}}
                        if n % 2
                        else {"command_type": "ConfirmStage", "payload": {"stage": stages[(n // 2) % 5]}}
                    )
                    try:
                        async with http.post(url, json=body, headers=headers) as response:
                            if response.status in (200, 202):
                                answered.append((await response.json())["command_id"])
                    except aiohttp.ClientError:
                        return
                    if len(answered) >= answered_before_kill and process.poll() is None:
                        process.send_signal(signal.SIGKILL)  # while the other clients' commands are in flight

            await asyncio.gather(*(client(s) for s in sessions))
        assert process.wait(20) == -signal.SIGKILL
    assert len(answered) >= answered_before_kill
    recorded = {str(r[0]) for r in await pool.fetch("SELECT id FROM command_inbox")}
    assert set(answered) <= recorded
    # Whole: every recorded command has its event(s), each event its outbox row, an async one its task; every
    # session's versions are gapless and its row says so.
    for query in (WITHOUT_EVENTS, WITHOUT_OUTBOX, WITH_GAPS):
        assert await pool.fetchval(query) == 0, query
