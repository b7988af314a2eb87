"""Event streams against the real `genesis api`: caps per user and per process, and the end at the token's exp."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from genesis.auth.tokens import issue_token
from genesis.settings import Settings
from tests.api_process import ApiProcess, running_api
from tests.conftest import JWT_SECRET
from tests.relay_harness import STAGES, eventually, new_session, submit
from tests.sse import next_event

PER_USER = 3
TOTAL = 5


def _auth(user: str, ttl: int = 600) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(Settings(jwt_secret=JWT_SECRET), user, ttl)}"}


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[ApiProcess]:
    env = {"SSE_MAX_STREAMS_PER_USER": str(PER_USER), "SSE_MAX_STREAMS": str(TOTAL), "SSE_HEARTBEAT": "0.5"}
    async with running_api(database_url, **env) as process:
        yield process


def _stream_url(api: ApiProcess, session_id: str) -> str:
    return f"{api.base_url}/genesis/sessions/{session_id}/events/stream"


async def test_streams_are_capped_per_user_and_per_process(api: ApiProcess, pool: asyncpg.Pool[Any]) -> None:
    sessions = {user: await new_session(pool, user) for user in ("alice", "bob", "carol")}
    async with contextlib.AsyncExitStack() as streams, aiohttp.ClientSession() as http:

        async def open_stream(user: str) -> aiohttp.ClientResponse:
            response = await http.get(_stream_url(api, sessions[user]), headers=_auth(user))
            if response.status == 200:
                streams.push_async_callback(_close, response)
            return response

        alice = [await open_stream("alice") for _ in range(PER_USER)]
        assert [r.status for r in alice] == [200] * PER_USER
        refused = await open_stream("alice")
        assert refused.status == 429
        assert int(refused.headers["Retry-After"]) > 0
        body = await refused.json()
        assert (body["error_code"], body["limit"]) == ("TOO_MANY_STREAMS", PER_USER)

        # Other users are not affected by alice's cap, only by the process's.
        assert [(await open_stream("bob")).status for _ in range(TOTAL - PER_USER)] == [200] * (TOTAL - PER_USER)
        full = await open_stream("carol")
        assert full.status == 503
        assert int(full.headers["Retry-After"]) > 0
        assert (await full.json())["error_code"] == "SERVICE_BUSY"

        # A stream that ends gives its slot back.
        alice[0].close()

        async def admitted() -> bool:
            response = await open_stream("alice")
            if response.status != 200:
                response.release()
            return response.status == 200

        await eventually(admitted, within=10, what="alice's closed stream counted down")
        still = await open_stream("alice")
        assert still.status in (429, 503)  # full again, one way or the other


async def _close(response: aiohttp.ClientResponse) -> None:
    response.close()


async def test_a_stream_ends_at_its_tokens_exp_and_the_client_resumes_without_a_gap(
    api: ApiProcess, pool: asyncpg.Pool[Any]
) -> None:
    session_id = await new_session(pool, "dana")
    async with aiohttp.ClientSession() as http:
        async with http.get(_stream_url(api, session_id), headers=_auth("dana", ttl=5)) as stream:
            assert stream.status == 200
            first = await next_event(stream)  # the replay: Genesis.Session.Created
            await submit(pool, session_id, "ConfirmStage", {"stage": STAGES[0]}, "dana")
            live = await next_event(stream)
            assert live.id is not None
            assert first.id is not None
            assert live.id > first.id
            ended = await next_event(stream, seconds=10)
            assert ended.event == "token-expired"
            async with asyncio.timeout(10):
                assert await stream.content.read() == b""  # and the server ended it
        # Committed while no stream was open.
        await submit(pool, session_id, "ConfirmStage", {"stage": STAGES[1]}, "dana")
        # The client comes back with a fresh token and its Last-Event-ID (an open stream's context is never
        # left with `async with`: aiohttp would wait for the endless body).
        headers = {**_auth("dana"), "Last-Event-ID": str(live.id)}
        resumed = await http.get(_stream_url(api, session_id), headers=headers)
        try:
            missed = await next_event(resumed)
            assert missed.id is not None
            assert missed.id > live.id
            assert missed.event is not None
            assert missed.event.endswith("StageConfirmed")
            with pytest.raises(TimeoutError):  # nothing twice, nothing more (heartbeats aside)
                async with asyncio.timeout(1.5):
                    await next_event(resumed)
        finally:
            resumed.close()
        expired = await http.get(_stream_url(api, session_id), headers=_auth("dana", ttl=-5))
        assert expired.status == 401
