"""Waiting for the user on the agent's side (CONTRACT §9), without a broker: the client's wait(), the event's
`resumes`, and the development agent's concept → feedback flow against a small server answering as the API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agents.consumer import Agent, Event, Resumes
from agents.dev_agent import dev_agent, placeholder_concepts
from agents.task_client import TaskClient
from genesis import errors
from genesis.settings import Settings

Seen = list[tuple[str, dict[str, Any]]]
CONCEPTS = "Genesis.Session.ConceptGenerationRequested"
FEEDBACK = "Genesis.Session.FeedbackSubmitted"


def _event(event_type: str, payload: dict[str, Any], metadata: dict[str, Any] | None = None) -> Event:
    event_id = str(uuid.uuid4())
    value = {
        "event_id": event_id,
        "event_type": event_type,
        "aggregate_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
        "payload": payload,
        "metadata": metadata or {"user_id": "writer"},
    }
    return Event.from_record([], json.dumps(value).encode(), 0, 1)


async def _api(aiohttp_server: Callable[..., Any], wait_answer: dict[str, Any]) -> tuple[TestServer, Seen]:
    """Answers /wait with `wait_answer` (201) and progress/complete with 200, recording what it was sent."""
    seen: Seen = []

    async def task(request: web.Request) -> web.Response:
        what = request.match_info["what"]
        seen.append((f"{request.match_info['command_id']}/{what}", await request.json()))
        if what == "wait":
            return web.json_response(wait_answer, status=201)
        return web.json_response({"command_id": request.match_info["command_id"], "command_status": "COMPLETED"})

    app = web.Application()
    app.router.add_post("/genesis/tasks/{command_id}/{what}", task)
    server: TestServer = await aiohttp_server(app)
    return server, seen


def _handle(status: str = "PAUSED", **fields: Any) -> dict[str, Any]:
    return {"handle_id": "h1", "status": status, "resume_payload": None, "resumed_by": None, **fields}


def test_an_event_names_the_flow_it_resumes() -> None:
    resumes = {"handle_id": "h1", "correlation_id": "c1", "resume_handle": {"concepts": [{"title": "A"}]}}
    event = _event(FEEDBACK, {"feedback": "More"}, {"user_id": "writer", "resumes": resumes})
    assert event.resumes == Resumes("h1", "c1", {"concepts": [{"title": "A"}]})
    assert _event(FEEDBACK, {}).resumes is None
    for unreadable in (None, "h1", {"handle_id": "h1", "correlation_id": "c1", "resume_handle": "x"}):
        assert _event(FEEDBACK, {}, {"resumes": unreadable}).resumes is None


async def test_wait_parks_with_the_handle_and_names_a_refusal(aiohttp_server: Callable[..., Any]) -> None:
    server, seen = await _api(aiohttp_server, _handle())
    async with TaskClient(str(server.make_url("/")), "tok", backoff=0.01) as client:
        assert (await client.wait("c1", {"n": 1}, 60, ["SubmitFeedback"]))["status"] == "PAUSED"  # a 201
    assert seen == [("c1/wait", {"resume_handle": {"n": 1}, "timeout_seconds": 60, "expects": ["SubmitFeedback"]})]

    async def already(request: web.Request) -> web.Response:
        return web.json_response({"error_code": "ALREADY_WAITING", "message": "waiting", "handle_id": "h0"}, status=409)

    app = web.Application()
    app.router.add_post("/genesis/tasks/{command_id}/wait", already)
    refusing: TestServer = await aiohttp_server(app)
    async with TaskClient(str(refusing.make_url("/")), "tok", backoff=0.01) as client:
        with pytest.raises(errors.AlreadyWaiting):
            await client.wait("c1", {"n": 2}, 60, ["SubmitFeedback"])


async def test_the_consumer_helper_parks_through_its_task_client(aiohttp_server: Callable[..., Any]) -> None:
    server, seen = await _api(aiohttp_server, _handle())
    async with TaskClient(str(server.make_url("/")), "tok", backoff=0.01) as client:
        agent = Agent(bootstrap="127.0.0.1:9", topic="t", group="g", tasks=client)
        assert (await agent.wait("c1", {"n": 1}, 60, ["SubmitFeedback"]))["status"] == "PAUSED"
    assert seen == [("c1/wait", {"resume_handle": {"n": 1}, "timeout_seconds": 60, "expects": ["SubmitFeedback"]})]
    with pytest.raises(RuntimeError, match="TaskClient"):
        await Agent(bootstrap="127.0.0.1:9", topic="t", group="g").wait("c1", {}, 60, ["SubmitFeedback"])


async def test_the_dev_agent_parks_before_it_proposes(aiohttp_server: Callable[..., Any]) -> None:
    server, seen = await _api(aiohttp_server, _handle())
    async with TaskClient(str(server.make_url("/")), "tok", backoff=0.01) as client:
        agent = dev_agent(Settings(agent_step_delay=0.001), client)
        event = _event(CONCEPTS, {"count": 2})
        await agent.handlers[CONCEPTS](event)
    assert [path.split("/")[1] for path, _ in seen] == ["progress", "progress", "wait", "complete"]
    concepts = placeholder_concepts({"count": 2})
    assert seen[2][1] == {"resume_handle": {"concepts": concepts}, "timeout_seconds": 86400,
                          "expects": ["SubmitFeedback"]}  # fmt: skip
    assert seen[3][1]["result"]["concepts"] == concepts


async def test_feedback_that_resumes_revises_the_parked_concepts(aiohttp_server: Callable[..., Any]) -> None:
    server, seen = await _api(aiohttp_server, _handle())
    concepts = [{"title": "Dragons", "logline": "L"}]
    resumes = {"handle_id": "h1", "correlation_id": "c1", "resume_handle": {"concepts": concepts}}
    async with TaskClient(str(server.make_url("/")), "tok", backoff=0.01) as client:
        agent = dev_agent(Settings(agent_step_delay=0.001), client)
        event = _event(FEEDBACK, {"feedback": "Fewer dragons."}, {"resumes": resumes})
        await agent.handlers[FEEDBACK](event)
        plain = _event(FEEDBACK, {"feedback": "Shorter."})
        await agent.handlers[FEEDBACK](plain)
    (path, revised), (_, unresumed) = [(p, b["result"]) for p, b in seen if p.endswith("complete")]
    assert path == f"{event.command_id}/complete"
    assert revised["concepts"] == [{"title": "Dragons (revised)", "logline": "L", "revised_for": "Fewer dragons."}]
    assert "concepts" not in unresumed  # resumes nothing: a revision of the feedback alone


async def test_an_answer_before_the_pause_is_revised_at_once(aiohttp_server: Callable[..., Any]) -> None:
    answered = _handle("RESUMED", resumed_by="f1", resume_payload={"feedback": "Quicker."})
    server, seen = await _api(aiohttp_server, answered)
    async with TaskClient(str(server.make_url("/")), "tok", backoff=0.01) as client:
        agent = dev_agent(Settings(agent_step_delay=0.001), client)
        event = _event(CONCEPTS, {"count": 1})
        await agent.handlers[CONCEPTS](event)
    completions = [(p, b["result"]) for p, b in seen if p.endswith("complete")]
    assert [p for p, _ in completions] == [f"{event.command_id}/complete", "f1/complete"]
    assert completions[1][1]["feedback"] == "Quicker."
    assert len(completions[1][1]["concepts"]) == 1


async def test_the_dev_agent_proposes_even_when_the_session_closed_meanwhile(
    aiohttp_server: Callable[..., Any],
) -> None:
    seen: Seen = []

    async def task(request: web.Request) -> web.Response:
        what = request.match_info["what"]
        seen.append((what, await request.json()))
        if what == "wait":
            return web.json_response({"error_code": "SESSION_CLOSED", "message": "Session is ABANDONED"}, status=409)
        return web.json_response({"command_id": request.match_info["command_id"], "command_status": "COMPLETED"})

    app = web.Application()
    app.router.add_post("/genesis/tasks/{command_id}/{what}", task)
    server: TestServer = await aiohttp_server(app)
    async with TaskClient(str(server.make_url("/")), "tok", backoff=0.01) as client:
        agent = dev_agent(Settings(agent_step_delay=0.001), client)
        await agent.handlers[CONCEPTS](_event(CONCEPTS, {"count": 1}))
    assert [what for what, _ in seen] == ["progress", "progress", "wait", "complete"]
    assert seen[3][1]["outcome"] == "COMPLETED"
