"""/metrics costs the same whatever the backlog: against the real `genesis api` with a 100k-row backlog.

16 clients poll /metrics as fast as they can while an authenticated request's latency is measured. The figures
are printed (run with -s); the assertions are about work, not speed: however many scrapes come, outbox_gauges()
runs about once per METRICS_REFRESH_INTERVAL (its calls counted by PostgreSQL), never once per scrape.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import aiohttp
import asyncpg
import pytest

from genesis.auth.tokens import issue_token
from genesis.settings import Settings
from tests.api_process import running_api
from tests.conftest import JWT_SECRET
from tests.relay_harness import bulk_backlog, new_session

BACKLOG_SESSIONS = 20_000  # × 5 events = 100k PENDING outbox rows
POLLERS = 16
SAMPLES = 60
REFRESH = 1.0


async def _latencies(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> list[float]:
    taken = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        async with http.get(url, headers=headers) as response:
            assert response.status == 200
            await response.read()
        taken.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)
    return taken


async def _refreshes(pool: asyncpg.Pool[Any]) -> int:
    """Calls of outbox_gauges() so far, by any backend (the API's refresher's)."""
    await pool.execute("SELECT pg_stat_clear_snapshot()")
    calls = await pool.fetchval(
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname = 'outbox_gauges'"
    )
    return int(calls)


@pytest.mark.slow
async def test_metrics_under_polling_with_a_100k_backlog(database_url: str, pool: asyncpg.Pool[Any]) -> None:
    added = await bulk_backlog(pool, BACKLOG_SESSIONS)
    assert await pool.fetchval("SELECT count(*) FROM event_outbox WHERE status = 'PENDING'") >= added
    session_id = await new_session(pool, "mia")
    headers = {"Authorization": f"Bearer {issue_token(Settings(jwt_secret=JWT_SECRET), 'mia')}"}
    # outbox_gauges() is plpgsql: its calls are counted once the database tracks them (new connections).
    await pool.execute(f"ALTER DATABASE {await pool.fetchval('SELECT current_database()')} SET track_functions = 'pl'")

    async with running_api(database_url, METRICS_REFRESH_INTERVAL=str(REFRESH)) as api:
        url = f"{api.base_url}/genesis/sessions/{session_id}"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            quiet = await _latencies(http, url, headers)
            scrapes = 0
            stop = asyncio.Event()

            async def poll() -> None:
                nonlocal scrapes
                while not stop.is_set():
                    async with http.get(f"{api.base_url}/metrics") as response:
                        assert response.status == 200
                        body = await response.text()
                    scrapes += 1
                    assert "genesis_outbox_backlog" in body

            refreshes_before = await _refreshes(pool)
            started = time.monotonic()
            pollers = [asyncio.create_task(poll()) for _ in range(POLLERS)]
            try:
                polled = await _latencies(http, url, headers)
            finally:
                stop.set()
                await asyncio.gather(*pollers)
            window = time.monotonic() - started
        await asyncio.sleep(1.5)  # a backend flushes its statistics at most once a second
        refreshes = await _refreshes(pool) - refreshes_before

    print(
        f"\n/metrics with a {added:,}-row backlog, {POLLERS} pollers: {scrapes} scrapes in {window:.1f} s; "
        f"outbox_gauges() ran {refreshes} times; GET session p50 {statistics.median(quiet) * 1000:.1f} ms quiet, "
        f"{statistics.median(polled) * 1000:.1f} ms while polled (p95 "
        f"{statistics.quantiles(polled, n=20)[-1] * 1000:.1f} ms)"
    )
    assert scrapes > 5 * (window / REFRESH + 2)  # far more scrapes than refreshes…
    # …and the refresher ran on its own schedule, not per scrape
    assert 0 < refreshes <= window / REFRESH + 3, (refreshes, window)
