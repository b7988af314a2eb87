"""A dedicated LISTEN connection: outside any pool, checked for liveness, reconnected with jittered backoff.

NOTIFY is only a hint; `on_connect` runs after every (re)connection so the owner re-reads the tables
for whatever it may have missed while disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from genesis import db
from genesis.waits import first_set, stopped_within

log = logging.getLogger("genesis.listener")


class Listener:
    def __init__(
        self,
        dsn: str,
        channels: Sequence[str],
        on_notify: Callable[[str, str], None],
        on_connect: Callable[[], None],
        *,
        application_name: str,
        ping_interval: float = 2.0,
        max_backoff: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._channels = tuple(channels)
        self._on_notify = on_notify
        self._on_connect = on_connect
        self._application_name = application_name
        self._ping_interval = ping_interval
        self._max_backoff = max_backoff
        self.connected = False
        self.backend_pid: int | None = None

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                await self._listen_until_lost(stop)
                failures = 0
            except (TimeoutError, asyncpg.PostgresError, *db.DATABASE_GONE) as exc:
                failures += 1
                delay = random.uniform(0, min(self._max_backoff, 0.1 * 2**failures))
                log.warning("LISTEN connection lost (%s: %s); reconnecting in %.2fs", type(exc).__name__, exc, delay)
                await stopped_within(stop, delay)
            finally:
                self.connected = False
                self.backend_pid = None

    async def _listen_until_lost(self, stop: asyncio.Event) -> None:
        conn: asyncpg.Connection[Any] = await asyncio.wait_for(
            asyncpg.connect(self._dsn, server_settings={"application_name": self._application_name}), 10
        )
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            for channel in self._channels:
                await conn.add_listener(channel, self._notified)
            self.connected = True
            self.backend_pid = conn.get_server_pid()
            log.info("listening on %s", ", ".join(self._channels))
            self._on_connect()
            while not stop.is_set() and not lost.is_set():
                await first_set(stop, lost, within=self._ping_interval)
                if not stop.is_set() and not lost.is_set():
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), self._ping_interval)  # liveness
            if lost.is_set() and not stop.is_set():
                raise ConnectionResetError("the server closed the LISTEN connection")
        finally:
            self.connected = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
            if not conn.is_closed():
                conn.terminate()

    def _notified(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        self._on_notify(channel, str(payload))
