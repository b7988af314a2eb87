"""The development agent's concept → feedback → revision flow through a resume handle (CONTRACT §9), against
the real API, relay, broker and database: the session shows what it waits for, and the feedback is revised from
the handle, by a different agent process than the one that parked the flow."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from agents.dev_agent import placeholder_concepts
from genesis.auth.tokens import issue_token
from genesis.settings import Settings
from tests.agent_harness import AgentProcess, Loop, get, open_loop, post
from tests.relay_harness import eventually
from tests.sse import Message, next_event

pytestmark = pytest.mark.slow
USER = "writer"


@pytest.fixture
def token(settings: Settings) -> str:
    return issue_token(settings, USER, 600)


async def _command(
    http: aiohttp.ClientSession, loop: Loop, token: str, session_id: str, kind: str, **payload: Any
) -> str:
    body = {"command_type": kind, "payload": payload}
    return str((await post(http, f"{loop.base_url}/genesis/sessions/{session_id}/commands", token, body))["command_id"])


async def _until(stream: aiohttp.ClientResponse, event_type: str) -> Message:
    while (message := await next_event(stream, seconds=60)).event != event_type:
        pass
    return message


async def _result(conn: asyncpg.Connection[Any], command_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT status, result FROM command_inbox WHERE id = $1", uuid.UUID(command_id))
    return row["result"] if row is not None and row["status"] == "COMPLETED" else None


def _revised(concepts: list[dict[str, Any]], feedback: str) -> list[dict[str, Any]]:
    return [{**c, "title": f"{c['title']} (revised)", "revised_for": feedback} for c in concepts]


async def test_concepts_wait_for_feedback_and_the_feedback_revises_them(
    settings: Settings, kafka_bootstrap: str, tmp_path: Path, token: str, conn: asyncpg.Connection[Any]
) -> None:
    async with open_loop(settings, kafka_bootstrap, tmp_path) as loop, aiohttp.ClientSession() as http:
        agent = await loop.start_agent(AGENT_STEP_DELAY="0.05")
        session_id = str((await post(http, f"{loop.base_url}/genesis/sessions", token))["id"])
        session_url = f"{loop.base_url}/genesis/sessions/{session_id}"
        stream = await http.get(f"{session_url}/events/stream", headers={"Authorization": f"Bearer {token}"})
        assert (await get(http, session_url, token))["waiting"] == []
        request = await _command(http, loop, token, session_id, "RequestConceptGeneration", count=2)

        proposed = (await _until(stream, "Genesis.Session.ConceptProposed")).data
        assert proposed is not None
        assert proposed["correlation_id"] == request
        concepts = proposed["payload"]["result"]["concepts"]
        assert concepts == placeholder_concepts({"count": 2})
        # Parked before proposing: the session already says what it waits for.
        (waiting,) = (await get(http, session_url, token))["waiting"]
        assert waiting["correlation_id"] == request
        assert waiting["expects"] == ["SubmitFeedback"]
        assert waiting["status"] == "PAUSED"

        feedback = await _command(http, loop, token, session_id, "SubmitFeedback", feedback="Fewer dragons.")
        submitted = (await _until(stream, "Genesis.Session.FeedbackSubmitted")).data
        assert submitted is not None
        assert submitted["metadata"]["resumes"]["handle_id"] == waiting["handle_id"]
        revised = (await _until(stream, "Genesis.Session.ContentRevised")).data
        assert revised is not None
        assert revised["correlation_id"] == feedback
        assert revised["payload"]["result"]["concepts"] == _revised(concepts, "Fewer dragons.")
        assert (await get(http, session_url, token))["waiting"] == []
        stream.close()
        assert await agent.terminate() == 0, agent.tail()


async def test_another_agent_process_resumes_the_flow_a_killed_one_parked(
    settings: Settings, kafka_bootstrap: str, tmp_path: Path, token: str, conn: asyncpg.Connection[Any]
) -> None:
    async with open_loop(settings, kafka_bootstrap, tmp_path, partitions=1) as loop, aiohttp.ClientSession() as http:
        first = await loop.start_agent(AGENT_STEP_DELAY="0.05")
        await loop.wait_assigned(first)
        second = await loop.start_agent(AGENT_STEP_DELAY="0.05")

        async def settled_group() -> bool:
            held = [first.assigned(), second.assigned()]
            return None not in held and sorted((held[0] or []) + (held[1] or [])) == [0]

        await eventually(settled_group, within=60, what="both agents in the group, one holding the partition")
        parker, other = (first, second) if first.assigned() == [0] else (second, first)

        session_id = str((await post(http, f"{loop.base_url}/genesis/sessions", token))["id"])
        request = await _command(http, loop, token, session_id, "RequestConceptGeneration", count=1)

        async def parked() -> bool:
            status = await conn.fetchval(
                "SELECT status FROM flow_resume_handles WHERE correlation_id = $1", uuid.UUID(request)
            )
            return bool(status == "PAUSED")

        await eventually(parked, within=60, what="the flow parked", every=0.05)
        _kill(parker)
        assert parker.process is not None
        await parker.process.wait()

        feedback = await _command(http, loop, token, session_id, "SubmitFeedback", feedback="Darker.")

        async def revised() -> bool:
            return await _result(conn, feedback) is not None and await _result(conn, request) is not None

        await eventually(revised, within=90, what="the feedback revised by the other agent", every=0.1)
        result = await _result(conn, feedback)
        assert result is not None
        assert result["concepts"] == _revised(placeholder_concepts({"count": 1}), "Darker.")
        assert feedback in await other.logged(feedback)
        assert feedback not in parker.handled()
        events = await conn.fetch(
            "SELECT event_type FROM domain_events WHERE correlation_id = $1 ORDER BY id", uuid.UUID(feedback)
        )
        assert [e["event_type"] for e in events] == [
            "Genesis.Session.FeedbackSubmitted",
            "Genesis.Session.ContentRevised",
        ]
        assert await other.terminate() == 0, other.tail()


def _kill(agent: AgentProcess) -> None:
    agent.kill()  # SIGKILL: nothing of its flow survives in the process
