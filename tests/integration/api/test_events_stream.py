"""The live SSE stream against a real PostgreSQL: latency, resume, the replay/live seam, fan-out, faults."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import pytest

from api import state
from api.app import create_app
from genesis import db
from genesis.settings import Settings
from tests.integration.tables import Auth, Client, create_session
from tests.relay_harness import complete, eventually, submit
from tests.sse import next_event, next_message


async def _submit_feedback(conn: asyncpg.Connection[Any], session_id: str, text: str = "more") -> None:
    """Two events: FeedbackSubmitted, then the completion's."""
    await complete(conn, await submit(conn, session_id, "SubmitFeedback", {"feedback": text}, "alice"))


def _url(session_id: str) -> str:
    return f"/genesis/sessions/{session_id}/events/stream"


async def _open(client: Client, session_id: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
    response = await client.get(_url(session_id), headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return response


async def test_a_committed_event_is_pushed_live(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    stream = await _open(client, session_id, auth())
    created = await next_event(stream)
    assert created.event == "Genesis.Session.Created"
    assert created.data is not None
    assert created.id == created.data["sequence"]

    await _submit_feedback(conn, session_id)
    # The API has no polling fallback: that the event arrives at all proves the NOTIFY path.
    submitted = await next_event(stream, seconds=10)
    assert submitted.event == "Genesis.Session.FeedbackSubmitted"
    assert submitted.data is not None
    assert submitted.data["causation_id"] == created.data["event_id"]
    stream.close()


async def test_a_stream_carries_the_cors_headers_and_the_request_id(
    settings: Settings, aiohttp_client: Callable[..., Any], auth: Auth
) -> None:
    client: Client = await aiohttp_client(
        create_app(dataclasses.replace(settings, cors_origins=("https://app.example",)))
    )
    session_id = await create_session(client, auth())
    headers = {**auth(), "Origin": "https://app.example", "X-Request-ID": "stream-1"}
    stream = await _open(client, session_id, headers)
    assert stream.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "X-Request-ID" in stream.headers["Access-Control-Expose-Headers"]
    assert stream.headers["X-Request-ID"] == "stream-1"
    assert (await next_event(stream)).event == "Genesis.Session.Created"
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

    via_query = await client.get(f"{_url(session_id)}?after={missed[-1].id}", headers=auth())
    assert (await next_event(via_query)).data["aggregate_version"] == 6  # type: ignore[index]
    via_query.close()


@pytest.mark.parametrize(
    ("name", "query", "header"), [("after", "?after=x", {}), ("Last-Event-ID", "", {"Last-Event-ID": "x"})]
)
async def test_a_bad_resume_point_is_named_as_given(
    client: Client, auth: Auth, session_id: str, name: str, query: str, header: dict[str, str]
) -> None:
    response = await client.get(_url(session_id) + query, headers={**auth(), **header})
    assert response.status == 422
    body = await response.json()
    assert list(body["fields"]) == [name]
    assert body["message"].startswith(name)


async def test_events_committed_during_the_replay_are_neither_lost_nor_sent_twice(
    client: Client, auth: Auth, session_id: str, database_url: str
) -> None:
    rounds = 60
    written = 0

    async def write() -> None:
        nonlocal written
        writer = await db.connect(database_url, application_name="psql")
        try:
            for i in range(rounds):
                await _submit_feedback(writer, session_id, f"r{i}")
                written += 1
        finally:
            await writer.close()

    async def writing() -> bool:
        return written > 0

    writer_task = asyncio.create_task(write())
    try:
        await eventually(writing, within=10, what="the writer's first round")
        stream = await _open(client, session_id, auth())
        at_open = written
    finally:
        await writer_task
    # Commits landed both before the stream opened and after, so its replay ran while they were landing.
    assert 0 < at_open < rounds
    seen = [await next_event(stream) for _ in range(1 + rounds * 2)]
    versions = [m.data["aggregate_version"] for m in seen if m.data]
    assert versions == list(range(1, 1 + rounds * 2 + 1))
    stream.close()


async def test_200_streams_share_one_listening_connection_and_all_get_every_event(
    settings: Settings, aiohttp_client: Callable[..., Any], auth: Auth, conn: asyncpg.Connection[Any]
) -> None:
    # One user's 200 streams: past SSE_MAX_STREAMS_PER_USER's default, so raised here.
    client: Client = await aiohttp_client(create_app(dataclasses.replace(settings, sse_max_streams_per_user=200)))
    headers = auth()
    session_id = (await (await client.post("/genesis/sessions", headers=headers)).json())["id"]
    url = client.make_url(_url(session_id))
    # The test client pools at most 100 connections; 200 open streams need their own session.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
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


async def test_idle_stream_gets_heartbeats_and_a_closed_client_is_dropped_at_once(
    settings: Settings, aiohttp_client: Callable[..., Any], auth: Auth
) -> None:
    client: Client = await aiohttp_client(create_app(dataclasses.replace(settings, sse_heartbeat=0.3)))
    session_id = await create_session(client, auth())
    stream = await _open(client, session_id, auth())
    await next_event(stream)
    heartbeat = await next_message(stream, seconds=2)
    assert heartbeat.comment == "heartbeat"

    hub = client.app[state.HUB]
    assert hub.subscriber_count == 1
    stream.close()

    async def dropped() -> bool:
        return hub.subscriber_count == 0

    await eventually(dropped, within=2, what="the closed stream's subscription dropped")


async def test_a_client_that_falls_behind_is_cut_off_and_resumes(
    settings: Settings, aiohttp_client: Callable[..., Any], auth: Auth, conn: asyncpg.Connection[Any]
) -> None:
    client: Client = await aiohttp_client(create_app(dataclasses.replace(settings, sse_buffer=3)))
    session_id = await create_session(client, auth())
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


# session_events() failing as a lost connection does (SQLSTATE 08006) on every page but the first.
_FAIL_AFTER_THE_FIRST_PAGE = """
ALTER FUNCTION session_events(uuid, text, bigint, integer) RENAME TO session_events_first_page;
CREATE FUNCTION session_events(_session_id uuid, _user_id text, _after bigint, _limit integer)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF _after > 0 THEN
        RAISE EXCEPTION 'connection lost' USING ERRCODE = '08006';
    END IF;
    RETURN session_events_first_page(_session_id, _user_id, _after, _limit);
END;
$$;
"""


async def test_a_database_error_before_the_stream_is_an_answer_and_after_it_ends_the_stream(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(250):  # 501 events: the replay needs a second page, read once the stream is open
        await _submit_feedback(conn, session_id, f"{i}")
    await conn.execute(_FAIL_AFTER_THE_FIRST_PAGE)
    hub = client.app[state.HUB]

    stream = await _open(client, session_id, auth())
    replayed = [await next_event(stream) for _ in range(500)]
    with pytest.raises(ConnectionResetError):  # a clean end, not an error response inside the chunked body
        await next_event(stream)
    assert any(r.levelno == logging.ERROR and "event stream" in r.getMessage() for r in caplog.records)
    assert hub.subscriber_count == 0

    resumed = await client.get(_url(session_id), headers={**auth(), "Last-Event-ID": str(replayed[-1].id)})
    assert resumed.status == 503  # the stream had not started: a proper error answer
    assert (await resumed.json())["error_code"] == "SERVICE_UNAVAILABLE"
    assert hub.subscriber_count == 0


async def test_a_subscription_whose_first_read_fails_is_not_left_behind(
    settings: Settings, aiohttp_client: Callable[..., Any], auth: Auth, conn: asyncpg.Connection[Any]
) -> None:
    # The API's sessions (opened after this) give up waiting on a lock after 100 ms.
    await conn.execute(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET lock_timeout = 100', current_database()); END $$"
    )
    client: Client = await aiohttp_client(create_app(settings))
    session_id = await create_session(client, auth())
    async with conn.transaction():
        await conn.execute("LOCK TABLE domain_events IN ACCESS EXCLUSIVE MODE")
        response = await client.get(_url(session_id), headers=auth())
    assert response.status == 500
    assert client.app[state.HUB].subscriber_count == 0


async def test_when_the_hub_dies_its_streams_end_and_new_ones_are_refused(
    settings: Settings,
    aiohttp_client: Callable[..., Any],
    auth: Auth,
    conn: asyncpg.Connection[Any],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client: Client = await aiohttp_client(create_app(dataclasses.replace(settings, sse_heartbeat=0.2)))
    session_id = await create_session(client, auth())
    stream = await _open(client, session_id, auth())
    await next_event(stream)

    async def broken(_session_id: str) -> None:
        raise RuntimeError("a bug in the hub")

    monkeypatch.setattr(client.app[state.HUB], "_deliver", broken)
    await _submit_feedback(conn, session_id)  # its NOTIFY wakes the hub, which dies
    with pytest.raises(ConnectionResetError):  # ended, not left heartbeating with nothing behind it
        await next_event(stream, seconds=5)
    assert any(r.levelno == logging.ERROR and "live events" in r.getMessage() for r in caplog.records)
    refused = await client.get(_url(session_id), headers=auth())
    assert refused.status == 503
    assert (await refused.json())["error_code"] == "SERVICE_UNAVAILABLE"
