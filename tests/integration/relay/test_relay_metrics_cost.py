"""The relay's /metrics port reads the outbox gauges from memory, like the API's: a real `genesis relay` scraped
hundreds of times runs outbox_gauges() on its refresher's schedule only (counted as scans of event_outbox), on a
connection of its own rather than the claim pool."""

from __future__ import annotations

import asyncio
import time

from tests.relay_harness import Pool, Rig

REFRESH = 0.5
SCRAPES = 200


async def _outbox_scans(pool: Pool) -> int:
    await pool.execute("SELECT pg_stat_clear_snapshot()")
    scans = await pool.fetchval(
        "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'event_outbox'"
    )
    return int(scans)


async def _scans_per_refresh(pool: Pool) -> int:
    before = await _outbox_scans(pool)
    await pool.fetchrow("SELECT * FROM outbox_gauges()")
    await asyncio.sleep(1.2)  # a backend flushes its statistics at most once a second
    return await _outbox_scans(pool) - before


async def test_scraping_the_relay_does_not_query_the_outbox(rig: Rig) -> None:
    per_refresh = await _scans_per_refresh(rig.pool)
    relay = await rig.start_relay(METRICS_REFRESH_INTERVAL=REFRESH, RELAY_POLL_INTERVAL=30, RELAY_SWEEP_INTERVAL=600)
    _, text = await relay.http("/metrics")
    assert "genesis_outbox_backlog" in text
    before = await _outbox_scans(rig.pool)
    started = time.monotonic()
    for _ in range(SCRAPES):
        status, text = await relay.http("/metrics")
        assert status == 200
    await asyncio.sleep(1.2)  # a backend flushes its statistics at most once a second
    scans = await _outbox_scans(rig.pool) - before
    window = time.monotonic() - started  # the refresher ran on its schedule through the wait too
    assert "genesis_outbox_backlog" in text
    # Each refresh scans the table `per_refresh` times (an index range each); the sweeper and poll add a few.
    assert scans <= per_refresh * (window / REFRESH + 2) + 4, (scans, per_refresh, window)
