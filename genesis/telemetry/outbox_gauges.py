"""The outbox gauges, refreshed in the background and read from memory: shared by the API's /metrics and the relay.

One task per process runs `outbox_gauges()` every `interval` seconds on a connection of its own (never a pool a
request waits for), under a statement timeout, and a scrape only reads the last result: a scrape costs the same
whatever the backlog and however often it comes. The refresh does not scan the backlog either (issue 22): every
count is an index range bounded by a cap or by what relays hold, and the backlog past 10,000 rows is an estimate
(sql/functions/outbox_gauges.sql). `outbox_stats()`, the exact count, read every unfinished row: 0.83 s at 1.2 M
PENDING rows, so in a long outage its refresh timed out and the gauges vanished when they mattered most.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg

from genesis import db
from genesis.waits import stopped_within

log = logging.getLogger("genesis.outbox")

STATEMENT_TIMEOUT_MS = 2000


class OutboxGauges:
    def __init__(
        self,
        dsn: str,
        *,
        application_name: str,
        statement_cache_size: int = db.STATEMENT_CACHE_SIZE,
        interval: float = 5.0,
        on_refresh: Callable[[Mapping[str, float]], None] = lambda _values: None,
        on_error: Callable[[], None] = lambda: None,
    ) -> None:
        self._dsn = dsn
        self._application_name = application_name
        self._statement_cache_size = statement_cache_size
        self._interval = interval
        self._on_refresh = on_refresh
        self._on_error = on_error
        self._conn: asyncpg.Connection[Any] | None = None
        self.values: dict[str, float] | None = None  # the last outbox_gauges() row; None after a failed refresh
        self.refreshed_at: float | None = None  # time.time() of that row

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self.refresh()
                await stopped_within(stop, self._interval)
        finally:
            await self._disconnect()

    async def refresh(self) -> None:
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await db.connect(
                    self._dsn, application_name=self._application_name, statement_cache_size=self._statement_cache_size
                )
            async with asyncio.timeout(STATEMENT_TIMEOUT_MS / 1000 * 2), self._conn.transaction():
                # SET LOCAL, not SET: behind a transaction pooler a session's SET stays on a server connection that
                # other clients get next.
                await self._conn.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
                row = await self._conn.fetchrow("SELECT * FROM outbox_gauges()")
        except (asyncpg.PostgresError, TimeoutError, *db.DATABASE_GONE) as exc:
            self.values = None  # left out rather than shown stale: an absent gauge is what alerts watch for
            self._on_error()
            log.warning("outbox_gauges() failed: %s", type(exc).__name__, extra={"fields": {"error": str(exc)}})
            await self._disconnect()
            return
        if row is not None:
            self.values = {key: float(value) for key, value in dict(row).items()}
            self.refreshed_at = time.time()
            self._on_refresh(self.values)

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=1)
