"""The agents' helper without a broker: how a record's outcome is decided, and the client's retries
against a small aiohttp server that answers as the API would."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agents.consumer import ANY_EVENT, Agent, Event, UnreadableRecordError, _HandlerAbandonedError
from agents.dev_agent import placeholder_concepts, placeholder_revision
from agents.task_client import TaskClient
from genesis import errors
from genesis.local.services import free_port

Answers = list[tuple[int, dict[str, Any]]]


def _event(event_type: str = "Genesis.Session.ConceptGenerationRequested", **payload: Any) -> Event:
    event_id = str(uuid.uuid4())
    value = {
        "event_id": event_id,
        "event_type": event_type,
        "aggregate_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
        "payload": payload,
    }
    return Event.from_record([("event_id", event_id.encode())], json.dumps(value).encode(), 0, 7)


async def _api(aiohttp_server: Callable[..., Any], answers: Answers) -> tuple[TestServer, list[dict[str, Any]]]:
    """A server that answers each POST with the next of `answers` (the last one for ever after)."""
    seen: list[dict[str, Any]] = []

    async def task(request: web.Request) -> web.Response:
        seen.append({"path": request.path, "body": await request.json(), "auth": request.headers["Authorization"]})
        status, body = answers[min(len(seen), len(answers)) - 1]
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_post("/genesis/tasks/{command_id}/{what}", task)
    server: TestServer = await aiohttp_server(app)
    return server, seen


def test_an_event_is_read_from_the_record() -> None:
    event = _event(count=2)
    assert event.payload == {"count": 2}
    assert (event.partition, event.offset) == (0, 7)
    assert event.command_id == event.value["correlation_id"]
    assert event.session_id == event.value["aggregate_id"]


@pytest.mark.parametrize(
    "value",
    [
        None,  # a tombstone
        b"",
        b"\xff\xfe{",
        b"{not json",
        b"[1, 2]",
        b"null",
        b'"an event"',
        b'{"event_id": "x"}',
        b'{"event_id": "x", "event_type": "Genesis.Session.Created", "aggregate_id": 7}',
        b'{"event_id": "x", "event_type": "T", "aggregate_id": "s", "payload": "not an object"}',
        # The event's shape, but ids that are no ids (a handler would send them to the task routes as paths).
        json.dumps(
            {
                "event_id": str(uuid.uuid4()),
                "event_type": "T",
                "aggregate_id": str(uuid.uuid4()),
                "correlation_id": "a/b",
            }
        ).encode(),
        json.dumps({"event_id": "x", "event_type": "T", "aggregate_id": str(uuid.uuid4())}).encode(),
        json.dumps({"event_id": str(uuid.uuid4()), "event_type": "T", "aggregate_id": "../../healthz"}).encode(),
        b"[" * 100_000,
    ],
)
def test_a_record_that_is_no_genesis_event_is_unreadable(value: bytes | None) -> None:
    with pytest.raises(UnreadableRecordError):
        Event.from_record([], value, 0, 1)


def test_a_header_that_is_not_text_falls_back_to_the_value() -> None:
    event_id = str(uuid.uuid4())
    value = json.dumps({"event_id": event_id, "event_type": "T", "aggregate_id": str(uuid.uuid4())}).encode()
    for headers in ([("event_id", b"\xff")], [("event_id", None)], []):
        event = Event.from_record(headers, value, 0, 1)
        assert (event.event_id, event.payload, event.command_id) == (event_id, {}, "")


async def test_the_client_retries_what_may_pass_and_names_a_refusal(aiohttp_server: Callable[..., Any]) -> None:
    done = {"command_id": "c", "command_status": "COMPLETED", "event_id": "e"}
    server, seen = await _api(aiohttp_server, [(503, {"error_code": "SERVICE_BUSY"}), (500, {}), (200, done)])
    async with TaskClient(str(server.make_url("/")), lambda: "tok", backoff=0.01) as client:
        assert await client.complete("c", "COMPLETED", {"n": 1}) == done
    assert len(seen) == 3
    assert seen[0] == {"path": "/genesis/tasks/c/complete", "body": {"outcome": "COMPLETED", "result": {"n": 1}},
                       "auth": "Bearer tok"}  # fmt: skip

    refused = {"error_code": "COMMAND_NOT_PENDING", "message": "Command is already FAILED", "command_status": "FAILED"}
    server, seen = await _api(aiohttp_server, [(409, refused)])
    async with TaskClient(str(server.make_url("/")), "tok", backoff=0.01) as client:
        with pytest.raises(errors.CommandNotPending) as caught:
            await client.progress("c", 10)
    assert caught.value.fields == {"command_status": "FAILED"}
    assert len(seen) == 1  # a refusal is not retried


async def test_the_client_gives_up_after_its_attempts() -> None:
    async with TaskClient(f"http://127.0.0.1:{free_port()}", "tok", attempts=3, backoff=0.01) as client:
        with pytest.raises(errors.Unavailable) as caught:
            await client.progress("c", 10)
    assert "after 3 attempts" in caught.value.message


async def test_a_settled_task_is_done_and_a_duplicate_is_skipped() -> None:
    agent = Agent(bootstrap="unused", topic="t", group="g")
    calls: list[str] = []

    @agent.handler("Genesis.Session.ConceptGenerationRequested")
    async def settled(event: Event) -> None:
        calls.append(event.event_id)
        raise errors.CommandNotPending("Command is already COMPLETED")

    event = _event()
    stop = asyncio.Event()
    await agent._handle(event, stop)
    await agent._handle(event, stop)  # redelivered: the recent ids know it
    await agent._handle(_event("Genesis.Session.StageConfirmed"), stop)  # no handler
    assert calls == [event.event_id]
    assert agent.counts == {"handled": 0, "duplicate": 1, "skipped": 1, "settled": 1, "failed": 0, "unreadable": 0}


async def test_an_unexpected_error_completes_the_task_failed(aiohttp_server: Callable[..., Any]) -> None:
    server, seen = await _api(aiohttp_server, [(200, {"command_status": "FAILED"})])
    async with TaskClient(str(server.make_url("/")), "tok") as client:
        agent = Agent(bootstrap="unused", topic="t", group="g", tasks=client)

        @agent.handler(ANY_EVENT)
        async def broken(event: Event) -> None:
            raise KeyError("preferences")

        event = _event()
        await agent._handle(event, asyncio.Event())
    assert agent.counts["failed"] == 1
    assert seen == [{"path": f"/genesis/tasks/{event.command_id}/complete", "auth": "Bearer tok",
                     "body": {"outcome": "FAILED", "result": {"error": "KeyError: 'preferences'"}}}]  # fmt: skip


async def test_a_failure_report_the_api_refuses_is_logged_and_the_record_is_done(
    aiohttp_server: Callable[..., Any],
) -> None:
    server, seen = await _api(aiohttp_server, [(404, {"error_code": "NOT_FOUND", "message": "no route"})])
    async with TaskClient(str(server.make_url("/")), "tok") as client:
        agent = Agent(bootstrap="unused", topic="t", group="g", tasks=client)

        @agent.handler(ANY_EVENT)
        async def refused(event: Event) -> None:
            await client.progress(event.command_id, 10)

        event = _event()
        await agent._handle(event, asyncio.Event())  # neither the progress nor the FAILED report raises out
    assert [s["path"].rsplit("/", 1)[1] for s in seen] == ["progress", "complete"]
    assert agent.counts["failed"] == 1
    assert event.event_id in agent.recent


@pytest.mark.parametrize("kind", [errors.Unavailable, errors.Unauthorized, errors.Forbidden])
async def test_the_api_out_of_reach_or_a_refused_token_stops_the_agent_uncommitted(
    kind: type[errors.DomainError],
) -> None:
    agent = Agent(bootstrap="unused", topic="t", group="g")

    @agent.handler(ANY_EVENT)
    async def unreachable(event: Event) -> None:
        raise kind("no")

    event = _event()
    with pytest.raises(kind):
        await agent._handle(event, asyncio.Event())
    assert event.event_id not in agent.recent  # it comes again after the restart
    assert agent.counts["failed"] == 0


async def test_stopping_lets_the_handler_finish_within_the_grace_and_abandons_it_after() -> None:
    agent = Agent(bootstrap="unused", topic="t", group="g", shutdown_grace=0.5)
    finished: list[str] = []
    release = asyncio.Event()

    @agent.handler("Genesis.Session.ConceptGenerationRequested")
    async def slow(event: Event) -> None:
        await release.wait()
        finished.append(event.event_id)

    @agent.handler("Genesis.Session.FeedbackSubmitted")
    async def stuck(event: Event) -> None:
        await asyncio.Event().wait()

    stop = asyncio.Event()
    event = _event()
    handling = asyncio.create_task(agent._handle(event, stop))
    await asyncio.sleep(0)
    stop.set()
    release.set()
    await handling
    assert finished == [event.event_id]

    with pytest.raises(_HandlerAbandonedError):
        await agent._handle(_event("Genesis.Session.FeedbackSubmitted"), stop)
    assert agent.counts["handled"] == 1


def test_placeholders_follow_the_payload() -> None:
    concepts = placeholder_concepts({"count": 2, "preferences": {"genre": "noir"}})
    assert [c["title"] for c in concepts] == ["Placeholder noir concept 1", "Placeholder noir concept 2"]
    assert len(placeholder_concepts({})) == 3
    assert placeholder_concepts({"count": 2}) == placeholder_concepts({"count": 2})  # a repeat completes the same
    revision = placeholder_revision({"feedback": "Darker."})
    assert '"Darker."' in revision["revision"]
    assert revision["generator"] == "development"
