"""The live SSE stream against a real PostgreSQL: latency, resume, the replay/live seam, fan-out, faults."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from api import state
from api.app import create_app
from genesis.settings import Settings
from tests.sse import next_event, next_message

Client = TestClient[web.Request, web.Application]
Auth = Callable[..., dict[str, str]]


async def _submit_feedback(conn: asyncpg.Connection[Any], session_id: str, text: str = "more") -> uuid.UUID:
    row = await conn.fetchrow(
        "SELECT * FROM submit_command($1, 'SubmitFeedback', $2, 'alice')", uuid.UUID(session_id), {"feedback": text}
    )
    assert row is not None
    command_id: uuid.UUID = row["command_id"]
    await conn.execute("SELECT * FROM complete_command($1, 'COMPLETED', '{}')", command_id)
    return command_id


async def _open(client: Client, session_id: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
    response = await client.get(f"/genesis/sessions/{session_id}/events/stream", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return response


async def test_a_committed_event_arrives_within_a_second(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    stream = await _open(client, session_id, auth())
    created = await next_event(stream)
    assert created.event == "Genesis.Session.Created"
    assert created.data is not None
    assert created.id == created.data["sequence"]

    started = time.monotonic()
    await _submit_feedback(conn, session_id)
    submitted = await next_event(stream, seconds=1.0)
    elapsed = time.monotonic() - started
    assert submitted.event == "Genesis.Session.FeedbackSubmitted"
    assert submitted.data is not None
    assert submitted.data["causation_id"] == created.data["event_id"]
    assert elapsed < 1.0
    stream.close()


async def test_reconnect_with_last_event_id_replays_exactly_the_missed_events(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    stream = await _open(client, session_id, auth())
    first = await next_event(stream)
    stream.close()

    await _submit_feedback(conn, session_id, "a")
    await _submit_feedback(conn, session_id, "b")  # four events missed while away

    resumed = await _open(client, session_id, {**auth(), "Last-Event-ID": str(first.id)})
    missed = [await next_event(resumed) for _ in range(4)]
    assert [m.data["aggregate_version"] for m in missed if m.data] == [2, 3, 4, 5]
    await _submit_feedback(conn, session_id, "c")
    live = await next_event(resumed)
    assert live.data is not None
    assert live.data["aggregate_version"] == 6
    resumed.close()

    via_query = await client.get(f"/genesis/sessions/{session_id}/events/stream?after={missed[-1].id}", headers=auth())
    assert (await next_event(via_query)).data["aggregate_version"] == 6  # type: ignore[index]
    via_query.close()


async def test_events_committed_during_the_replay_are_neither_lost_nor_sent_twice(
    client: Client, auth: Auth, session_id: str, database_url: str
) -> None:
    writer = await asyncpg.connect(database_url)
    writer_task = asyncio.create_task(_write_many(writer, session_id, rounds=60))
    try:
        await asyncio.sleep(0.05)  # the replay starts while commits keep landing
        stream = await _open(client, session_id, auth())
        await writer_task
        seen = [await next_event(stream) for _ in range(1 + 60 * 2)]
    finally:
        await writer.close()
    versions = [m.data["aggregate_version"] for m in seen if m.data]
    assert versions == list(range(1, 122))
    stream.close()


async def _write_many(conn: asyncpg.Connection[Any], session_id: str, rounds: int) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=__import__("json").dumps, decoder=__import__("json").loads, schema="pg_catalog"
    )
    for i in range(rounds):
        await _submit_feedback(conn, session_id, f"r{i}")


async def test_200_streams_share_one_listening_connection_and_all_get_every_event(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any], database_url: str
) -> None:
    headers = auth()
    # The test client pools at most 100 connections; 200 open streams need their own session.
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    url = client.make_url(f"/genesis/sessions/{session_id}/events/stream")
    streams = await asyncio.gather(*(http.get(url, headers=headers) for _ in range(200)))
    assert {s.status for s in streams} == {200}
    for stream in streams:
        assert (await next_event(stream)).event == "Genesis.Session.Created"
    listeners = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
        "genesis-api-listener",
    )
    assert listeners == 1

    await _submit_feedback(conn, session_id)
    received = await asyncio.gather(*(next_event(s, seconds=10) for s in streams))
    assert {m.event for m in received} == {"Genesis.Session.FeedbackSubmitted"}
    received = await asyncio.gather(*(next_event(s, seconds=10) for s in streams))
    assert {m.event for m in received} == {"Genesis.Session.ContentRevised"}
    for stream in streams:
        stream.close()
    await http.close()


async def test_idle_stream_gets_heartbeats_and_a_closed_client_is_dropped_at_once(
    settings: Settings, aiohttp_client: Callable[..., Any], auth: Auth
) -> None:
    client = await aiohttp_client(create_app(dataclasses.replace(settings, sse_heartbeat=0.3)))
    session_id = (await (await client.post("/genesis/sessions", headers=auth())).json())["id"]
    stream = await _open(client, session_id, auth())
    await next_event(stream)
    heartbeat = await next_message(stream, seconds=2)
    assert heartbeat.comment == "heartbeat"

    hub = client.app[state.HUB]
    assert hub.subscriber_count == 1
    stream.close()
    deadline = time.monotonic() + 2
    while hub.subscriber_count and time.monotonic() < deadline:  # noqa: ASYNC110 - watching from outside
        await asyncio.sleep(0.05)
    assert hub.subscriber_count == 0


async def test_a_client_that_falls_behind_is_cut_off_and_resumes(
    settings: Settings, aiohttp_client: Callable[..., Any], auth: Auth, conn: asyncpg.Connection[Any]
) -> None:
    client = await aiohttp_client(create_app(dataclasses.replace(settings, sse_buffer=3)))
    session_id = (await (await client.post("/genesis/sessions", headers=auth())).json())["id"]
    stream = await _open(client, session_id, auth())
    first = await next_event(stream)
    async with conn.transaction():  # one burst of 20 events, more than the client's buffer holds
        for i in range(10):
            await _submit_feedback(conn, session_id, f"burst {i}")
    messages = []
    try:
        while True:
            messages.append(await next_event(stream, seconds=5))
    except ConnectionResetError:
        pass  # the server ended the stream
    assert messages
    assert messages[-1].event == "overflow"
    got = [m.id for m in messages if m.event != "overflow"]
    resumed = await _open(client, session_id, {**auth(), "Last-Event-ID": str(got[-1] if got else first.id)})
    rest = [await next_event(resumed) for _ in range(20 - len(got))]
    versions = [m.data["aggregate_version"] for m in [*messages[:-1], *rest] if m.data]
    assert versions == list(range(2, 22))
    resumed.close()


async def test_streams_catch_up_after_the_listening_connection_drops(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    stream = await _open(client, session_id, auth())
    await next_event(stream)
    listener = client.app[state.LISTENER]
    old_pid = listener.backend_pid
    assert old_pid is not None
    await conn.execute("SELECT pg_terminate_backend($1)", old_pid)
    await _submit_feedback(conn, session_id)  # committed while nobody listens
    received = await next_event(stream, seconds=10)
    assert received.event == "Genesis.Session.FeedbackSubmitted"
    assert listener.backend_pid not in (None, old_pid)
    stream.close()
