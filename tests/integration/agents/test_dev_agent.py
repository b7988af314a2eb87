"""The Genesis loop closed by `genesis agent --dev` against the real API, relay, broker and database:
progress and results on the SSE stream, an agent killed mid-task, two agents sharing one group."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from genesis.auth.tokens import AGENT_SCOPE, issue_token
from genesis.settings import Settings
from tests.agent_harness import Loop, get, open_loop, post
from tests.relay_harness import eventually
from tests.sse import Message, next_event

pytestmark = pytest.mark.slow
USER = "writer"


@pytest.fixture
async def loop(settings: Settings, kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Loop]:
    async with open_loop(settings, kafka_bootstrap, tmp_path) as world:
        yield world


@pytest.fixture
def token(settings: Settings) -> str:
    return issue_token(settings, USER, 600)


async def _session(http: aiohttp.ClientSession, loop: Loop, token: str) -> str:
    return str((await post(http, f"{loop.base_url}/genesis/sessions", token))["id"])


async def _command(
    http: aiohttp.ClientSession, loop: Loop, token: str, session_id: str, command_type: str, payload: dict[str, Any]
) -> str:
    body = {"command_type": command_type, "payload": payload}
    return str((await post(http, f"{loop.base_url}/genesis/sessions/{session_id}/commands", token, body))["command_id"])


async def _status(conn: asyncpg.Connection[Any], command_id: str) -> str:
    return str(await conn.fetchval("SELECT status FROM command_inbox WHERE id = $1", uuid.UUID(command_id)))


async def _until_settled(conn: asyncpg.Connection[Any], command_ids: list[str], within: float = 90) -> None:
    async def settled() -> bool:
        rows = await conn.fetchval(
            "SELECT count(*) FROM command_inbox WHERE id = ANY($1) AND status IN ('COMPLETED', 'FAILED')",
            [uuid.UUID(c) for c in command_ids],
        )
        return int(rows) == len(command_ids)

    await eventually(settled, within=within, what=f"{len(command_ids)} command(s) settled", every=0.1)


async def _result_events(conn: asyncpg.Connection[Any], command_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT event_type FROM domain_events WHERE correlation_id = $1 ORDER BY id", uuid.UUID(command_id)
    )
    return [r["event_type"] for r in rows][1:]  # after the command's own event


async def _until(stream: aiohttp.ClientResponse, event_type: str) -> list[Message]:
    """Messages up to and including the first of `event_type`."""
    seen: list[Message] = []
    while not seen or seen[-1].event != event_type:
        seen.append(await next_event(stream, seconds=60))
    return seen


async def test_a_command_is_answered_by_the_agent_live_on_the_stream(
    loop: Loop, token: str, conn: asyncpg.Connection[Any]
) -> None:
    agent = await loop.start_agent(AGENT_STEP_DELAY="1")
    async with aiohttp.ClientSession() as http:
        session_id = await _session(http, loop, token)
        stream = await http.get(
            f"{loop.base_url}/genesis/sessions/{session_id}/events/stream", headers={"Authorization": f"Bearer {token}"}
        )
        assert (await next_event(stream)).event == "Genesis.Session.Created"
        payload = {"count": 2, "preferences": {"genre": "noir", "tone": "bleak"}}
        command_id = await _command(http, loop, token, session_id, "RequestConceptGeneration", payload)

        seen = await _until(stream, "Genesis.Session.ConceptProposed")
        assert seen[0].event == "Genesis.Session.ConceptGenerationRequested"
        progress = [m for m in seen if m.event == "task-progress"]
        # Each report goes out as it comes; two reports read at once go out once, as the later one.
        assert progress, [m.event for m in seen]
        assert all(m.id is None and m.data is not None and m.data["command_id"] == command_id for m in progress)
        values = [m.data["progress"] for m in progress if m.data]
        assert values == sorted(values)
        assert set(values) <= {30, 70}
        proposed = seen[-1].data
        assert proposed is not None
        result = proposed["payload"]["result"]
        assert result["generator"] == "development"
        assert len(result["concepts"]) == 2
        assert all("noir" in c["title"] and "tone: bleak" in c["logline"] for c in result["concepts"])

        command = await get(http, f"{loop.base_url}/genesis/sessions/{session_id}/commands/{command_id}", token)
        assert command["status"] == "COMPLETED"
        # The duplicate guard is released: the same command type is accepted again, and answered too.
        again = await _command(http, loop, token, session_id, "RequestConceptGeneration", {})
        assert again != command_id
        feedback = await _command(http, loop, token, session_id, "SubmitFeedback", {"feedback": "Fewer dragons."})
        revised = (await _until(stream, "Genesis.Session.ContentRevised"))[-1].data
        assert revised is not None
        assert revised["correlation_id"] == feedback
        assert '"Fewer dragons."' in revised["payload"]["result"]["revision"]
        assert revised["payload"]["result"]["generator"] == "development"
        await _until_settled(conn, [again, feedback])
        stream.close()

    assert await agent.terminate() == 0, agent.tail()


async def test_an_agent_killed_mid_task_completes_it_once_after_a_restart(
    loop: Loop, token: str, conn: asyncpg.Connection[Any]
) -> None:
    slow = await loop.start_agent(AGENT_STEP_DELAY="600")  # it will never get past its first report
    async with aiohttp.ClientSession() as http:
        session_id = await _session(http, loop, token)
        command_id = await _command(http, loop, token, session_id, "RequestConceptGeneration", {"count": 1})

    async def mid_task() -> bool:
        assert slow.process is not None
        assert slow.process.returncode is None, slow.tail()
        row = await conn.fetchrow(
            "SELECT status, progress FROM async_tasks WHERE command_id = $1", uuid.UUID(command_id)
        )
        return row is not None and tuple(row) == ("RUNNING", 30)

    await eventually(mid_task, within=60, what="the agent's first progress", every=0.1)
    slow.kill()
    assert slow.process is not None
    await slow.process.wait()
    assert await _status(conn, command_id) == "PROCESSING"

    # Its offset was never committed: the group gives the event to the restarted agent.
    restarted = await loop.start_agent(AGENT_STEP_DELAY="0.1")
    await _until_settled(conn, [command_id])
    assert await _status(conn, command_id) == "COMPLETED"
    assert await _result_events(conn, command_id) == ["Genesis.Session.ConceptProposed"]
    assert await restarted.logged(command_id) == [command_id]
    assert await restarted.terminate() == 0, restarted.tail()


async def test_two_agents_in_one_group_share_the_partitions_without_a_double_completion(
    settings: Settings, kafka_bootstrap: str, tmp_path: Path, token: str, conn: asyncpg.Connection[Any]
) -> None:
    async with open_loop(settings, kafka_bootstrap, tmp_path, partitions=4) as world:
        first = await world.start_agent(AGENT_STEP_DELAY="0.05")
        await world.wait_assigned(first)
        second = await world.start_agent(AGENT_STEP_DELAY="0.05")

        async def shared() -> bool:
            held = [first.assigned() or [], second.assigned() or []]
            return all(held) and sorted(held[0] + held[1]) == [0, 1, 2, 3]

        await eventually(shared, within=60, what="the four partitions split between the two agents", every=0.1)
        async with aiohttp.ClientSession() as http:
            sessions = await asyncio.gather(*(_session(http, world, token) for _ in range(12)))
            commands = [
                await _command(http, world, token, s, "RequestConceptGeneration", {"count": 1}) for s in sessions
            ]
        await _until_settled(conn, commands)

        for command_id in commands:
            assert await _status(conn, command_id) == "COMPLETED"
            assert await _result_events(conn, command_id) == ["Genesis.Session.ConceptProposed"]

        async def all_logged() -> bool:
            return set(first.handled()) | set(second.handled()) >= set(commands)

        await eventually(all_logged, within=30, what="both agents' logs naming every command", every=0.05)
        by_first, by_second = set(first.handled()), set(second.handled())
        assert by_first | by_second == set(commands)
        # Twelve sessions over four partitions: both got some.
        assert by_first
        assert by_second
        assert await first.terminate() == 0, first.tail()
        assert await second.terminate() == 0, second.tail()


async def test_the_documented_example_agent_completes_a_task(
    loop: Loop, token: str, conn: asyncpg.Connection[Any]
) -> None:
    example = str(Path(__file__).parents[3] / "examples" / "agent.py")
    agent_token = issue_token(loop.settings, "concept-agent", 600, AGENT_SCOPE)
    agent = await loop.start_agent(sys.executable, example, AGENT_TOKEN=agent_token)
    async with aiohttp.ClientSession() as http:
        session_id = await _session(http, loop, token)
        command_id = await _command(http, loop, token, session_id, "RequestConceptGeneration", {"count": 2})
    await _until_settled(conn, [command_id])
    result = await conn.fetchval("SELECT result FROM command_inbox WHERE id = $1", uuid.UUID(command_id))
    assert result == {"concepts": [{"title": "Concept 1 of 2"}, {"title": "Concept 2 of 2"}], "generator": "example"}
    assert await agent.terminate() == 0, agent.tail()


async def test_sigterm_mid_task_finishes_the_handler_commits_and_exits_0(
    loop: Loop, token: str, conn: asyncpg.Connection[Any]
) -> None:
    agent = await loop.start_agent(AGENT_STEP_DELAY="2")
    async with aiohttp.ClientSession() as http:
        session_id = await _session(http, loop, token)
        first = await _command(http, loop, token, session_id, "RequestConceptGeneration", {"count": 1})

        async def mid_task() -> bool:
            assert agent.process is not None
            assert agent.process.returncode is None, agent.tail()
            return await _status(conn, first) == "PROCESSING"

        await eventually(mid_task, within=60, what="the agent at work", every=0.05)
        assert await agent.terminate(within=10) == 0, agent.tail()  # the contract's bound, not a speed test
        assert await _status(conn, first) == "COMPLETED"  # it finished the task before exiting

        # It committed, too: the next member of the group does not get the event again.
        successor = await loop.start_agent(AGENT_STEP_DELAY="0.05")
        second = await _command(http, loop, token, session_id, "SubmitFeedback", {"feedback": "more"})
        await _until_settled(conn, [second])
    assert await successor.logged(second) == [second]
    assert await _result_events(conn, first) == ["Genesis.Session.ConceptProposed"]
