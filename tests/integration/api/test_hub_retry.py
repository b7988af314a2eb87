"""The SSE hub reads a notified session again by itself when the read fails, against the real `genesis api`.

The failure is real: the test swaps `genesis_event_json` (which the hub's read calls) for a version that raises
for the API's pool (application_name genesis-api) and counts each attempt in a sequence, which a rollback does not
undo. Once the hub has tried and failed, the function is restored; the event must then reach the stream without
any later event to wake the hub.
"""

from __future__ import annotations

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

BROKEN = """
CREATE OR REPLACE FUNCTION genesis_event_json(_e domain_events) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF current_setting('application_name') = 'genesis-api' THEN
        PERFORM nextval('hub_read_attempts');
        RAISE EXCEPTION 'injected: the read of new events fails';
    END IF;
    RETURN jsonb_build_object('sequence', _e.id);
END $$
"""


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[ApiProcess]:
    async with running_api(database_url, SSE_HEARTBEAT="0.5") as process:
        yield process


async def test_a_failed_read_is_retried_until_the_event_arrives(api: ApiProcess, pool: asyncpg.Pool[Any]) -> None:
    session_id = await new_session(pool, "hana")
    original = await pool.fetchval("SELECT pg_get_functiondef('genesis_event_json(domain_events)'::regprocedure)")
    token = issue_token(Settings(jwt_secret=JWT_SECRET), "hana")
    url = f"{api.base_url}/genesis/sessions/{session_id}/events/stream"
    async with aiohttp.ClientSession() as http:
        stream = await http.get(url, headers={"Authorization": f"Bearer {token}"})
        try:
            assert (await next_event(stream)).event == "Genesis.Session.Created"
            await pool.execute("CREATE SEQUENCE hub_read_attempts")
            await pool.execute(BROKEN)

            async def attempts() -> int:
                return int(await pool.fetchval("SELECT last_value FROM hub_read_attempts"))

            async def tried_twice() -> bool:  # the first attempt on NOTIFY, and one the hub made by itself
                return await attempts() >= 2

            await submit(pool, session_id, "ConfirmStage", {"stage": STAGES[0]}, "hana")
            await eventually(tried_twice, within=10, what="the hub reading again after a failed read")
            await pool.execute(original)  # the database is well again; no other event is committed
            arrived = await next_event(stream, seconds=10)
            assert arrived.event == "Genesis.Session.StageConfirmed"
            assert arrived.data is not None
            assert arrived.data["aggregate_version"] == 2
        finally:
            stream.close()
