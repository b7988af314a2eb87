"""The HTTP server around the app: header limits and connection timeouts against stalled or hostile clients.

aiohttp has a keep-alive timeout but no deadline for a request head: a client that sends half a head and then
trickles (slowloris) holds its connection for as long as the keep-alive timeout, an hour by default. The runner
below gives every connection's protocol a head timer: it starts with the first byte of a head and closes the
connection unless the head is complete within API_HEADER_TIMEOUT. It builds on aiohttp 3.14's RequestHandler
internals (`_messages`, `_request_in_progress`, `Server._kwargs`): tests/integration/api/test_connections.py, against
the real `genesis api`, fails if an aiohttp release changes them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import HttpProcessingError

from api.metrics import MALFORMED_REQUESTS
from genesis.settings import Settings

# Header lines up to 16 KiB reach the app, so an oversized Idempotency-Key or token is refused in JSON;
# beyond that aiohttp's own 400 answers.
MAX_FIELD_SIZE = 16 * 1024
MAX_LINE_SIZE = 16 * 1024


class _HeadTimedHandler(web_protocol.RequestHandler):
    """A RequestHandler that closes its connection when a request head stays incomplete for too long."""

    __slots__ = ("_head_timer", "header_timeout")  # no __dict__ per connection: 10,000 streams are 10,000 of these

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.header_timeout = header_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport is None:
            return
        waiting_for_head = not self._messages and not self._request_in_progress
        if not waiting_for_head:
            self._stop_head_timer()
        elif self._head_timer is None:
            self._head_timer = self._loop.call_later(self.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._messages and not self._request_in_progress:
            self.force_close()


class _Server(web.Server):
    header_timeout = 30.0

    def __call__(self) -> web_protocol.RequestHandler:
        return _HeadTimedHandler(self, loop=self._loop, header_timeout=self.header_timeout, **self._kwargs)


class ApiRunner(web.AppRunner):
    def __init__(self, app: web.Application, settings: Settings, **kwargs: Any) -> None:
        super().__init__(
            app,
            keepalive_timeout=settings.api_keepalive_timeout,
            max_field_size=MAX_FIELD_SIZE,
            max_line_size=MAX_LINE_SIZE,
            **kwargs,
        )
        self._header_timeout = settings.api_header_timeout

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # Only the protocol factory changes; everything else about aiohttp's Server stays as it built it.
        server.__class__ = _Server
        assert isinstance(server, _Server)
        server.header_timeout = self._header_timeout
        return server


class QuietBadRequests(logging.Filter):
    """aiohttp logs a traceback for every malformed request it refuses: any client could flood the log.
    They are counted instead (genesis_api_malformed_requests_total)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            MALFORMED_REQUESTS.inc()
            return False
        return True


def quiet_bad_requests() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, QuietBadRequests) for f in server_log.filters):
        server_log.addFilter(QuietBadRequests())
