"""The HTTP server around the app: header limits, a head timeout and aiohttp's own error answers, against stalled or
hostile clients.

aiohttp has a keep-alive timeout but no deadline for a request head: a client that connects and says nothing, or
sends half a head and then trickles (slowloris), holds its connection for as long as the keep-alive timeout. The
protocol below gives every connection a head timer: it runs from the moment the connection is made, from the first
byte of every later head, and from the end of a request when bytes of the next head already wait (pipelining), and
it closes the connection unless the head is complete within API_HEADER_TIMEOUT. An idle keep-alive connection, with
nothing of a next head, stays the keep-alive timeout's business (after a chunked request, whose framing is not
followed, the head timeout's).

A request aiohttp cannot parse (a header over 16 KiB among them) is answered by the protocol, not the app: here in
the service's JSON error shape too, not aiohttp's text/plain.

This builds on aiohttp 3.14's RequestHandler internals (`_messages`, `_request_in_progress`, `_handle_request`,
`Server._kwargs`): tests/integration/api/test_connections.py, against the real `genesis api`, fails if an aiohttp
release changes them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError, LineTooLong
from aiohttp.http_parser import RawRequestMessage

from api.metrics import MALFORMED_REQUESTS
from api.middlewares import HTTP_CODES, error_response
from genesis import errors
from genesis.settings import Settings

# Header lines up to 16 KiB reach the app, so an oversized Idempotency-Key or token is refused there with its name;
# beyond that the parser refuses the request (bounded memory) and the protocol answers HEADER_TOO_LARGE.
MAX_FIELD_SIZE = 16 * 1024
MAX_LINE_SIZE = 16 * 1024
HEAD_END = b"\r\n\r\n"


class _Framing:
    """Where a connection's bytes stand between requests: whether bytes of a next head have arrived. llhttp keeps
    that to itself, so this follows the same framing from the heads the parser returns (a head ends at its blank
    line, a body is Content-Length bytes). A framing it does not follow (chunked, upgrade, a parse error) makes it
    `lost`: the protocol then falls back to timing from the first byte that arrives while it waits for a head, and
    from the end of every request."""

    __slots__ = ("body_left", "carry", "in_head", "lost")

    def __init__(self) -> None:
        self.body_left = 0  # body bytes of the last complete head still to come
        self.in_head = False  # bytes of a head without its blank line yet
        self.carry = b""  # that partial head's last 3 bytes: its blank line may straddle two reads
        self.lost = False

    def feed(self, data: bytes, heads: Sequence[object]) -> None:
        """`heads`: what the parser completed from `data`, in order."""
        if self.lost:
            return
        pos = 0
        for head in heads:
            pos = self._after_body(data, pos)
            end = self._head_end(data, pos)
            length = _body_length(head)
            if end is None or length is None:
                self.lost = True
                return
            pos, self.in_head, self.carry, self.body_left = end, False, b"", length
        pos = self._after_body(data, pos)
        if pos < len(data):
            self.in_head = True
            self.carry = (self.carry + data[max(pos, len(data) - 3) :])[-3:]

    def _after_body(self, data: bytes, pos: int) -> int:
        skipped = min(self.body_left, len(data) - pos)
        self.body_left -= skipped
        pos += skipped
        if not self.in_head:  # llhttp skips blank lines between requests
            while pos < len(data) and data[pos] in b"\r\n":
                pos += 1
        return pos

    def _head_end(self, data: bytes, pos: int) -> int | None:
        """Where the head that is in progress at `pos` ends (after its blank line), or None if not in `data`."""
        if self.carry:
            straddling = (self.carry + data[pos : pos + 3]).find(HEAD_END)
            if straddling >= 0:
                return pos + straddling + len(HEAD_END) - len(self.carry)
        found = data.find(HEAD_END, pos)
        return None if found < 0 else found + len(HEAD_END)


def _body_length(head: object) -> int | None:
    """Wire bytes of a request's body, None for a framing not followed (or a refused request)."""
    if not isinstance(head, RawRequestMessage) or head.chunked or head.upgrade:
        return None
    length = head.headers.get("Content-Length")
    return int(length) if length is not None else 0


class _GuardedHandler(web_protocol.RequestHandler):
    """A RequestHandler with a head timer, and aiohttp's own error answers in the JSON shape."""

    __slots__ = ("_framing", "_head_timer", "header_timeout")  # no __dict__ per connection: 10,000 streams

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.header_timeout = header_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._framing = _Framing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_head_timer()  # a connection that sends nothing waits for its first head from now on

    def data_received(self, data: bytes) -> None:
        queued = len(self._messages)
        super().data_received(data)
        if self.transport is None:
            return
        self._framing.feed(data, [message for message, _ in itertools.islice(self._messages, queued, None)])
        if not self._waiting_for_head():
            self._stop_head_timer()
        elif data and (self._framing.in_head or self._framing.lost):
            self._start_head_timer()

    async def _handle_request(
        self,
        request: web.BaseRequest,
        start_time: float | None,
        request_handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
    ) -> tuple[web.StreamResponse, bool]:
        async def expectation_in_json(request: web.BaseRequest) -> web.StreamResponse:
            try:
                return await request_handler(request)
            except web.HTTPExpectationFailed as exc:  # an Expect on no route: aiohttp's check, before any middleware
                return error_response(417, HTTP_CODES[417], exc.text or "Expectation failed")

        try:
            return await super()._handle_request(request, start_time, expectation_in_json)
        finally:
            # A pipelined head began to arrive while this request was served; or, the framing lost (chunked),
            # one may have: timed as one, so an idle connection then closes at the head timeout, not keep-alive's.
            if not self._messages and (self._framing.in_head or self._framing.lost):
                self._start_head_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's own answer (a request it could not parse, or an error that escaped the app's middleware), in the
        service's shape: `{"error_code", "message"}`, application/json."""
        super().handle_error(request, status, exc, message)  # logs it (QuietBadRequests counts it), or raises
        response = web.json_response(_protocol_error(status, exc).body(), status=status)
        response.force_close()
        return response

    def _waiting_for_head(self) -> bool:
        return not self._messages and not self._request_in_progress

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self._loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._waiting_for_head():
            self.force_close()


def _protocol_error(status: int, exc: BaseException | None) -> errors.DomainError:
    if isinstance(exc, ContentEncodingError):  # br or zstd: aiohttp's words would ask the client to install a module
        return errors.DomainError("Content-Encoding not supported: a body may be gzip, deflate or not encoded")
    if isinstance(exc, LineTooLong):
        return errors.HeaderTooLarge(
            f"A request header or the request line is over {MAX_FIELD_SIZE} bytes", limit_bytes=MAX_FIELD_SIZE
        )
    if status < 500:
        # The parser's own words, first line only: the rest quotes the client's bytes back.
        reason = exc.message if isinstance(exc, HttpProcessingError) else ""
        return errors.DomainError(f"Malformed HTTP request: {reason.splitlines()[0][:200] if reason else status}")
    return errors.Internal("Internal server error")


class _Server(web.Server):
    header_timeout = 30.0

    def __call__(self) -> web_protocol.RequestHandler:
        return _GuardedHandler(self, loop=self._loop, header_timeout=self.header_timeout, **self._kwargs)


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
