"""A hostile client on raw sockets against the real `genesis api`: stalled heads, idle keep-alives, big headers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from genesis.auth.tokens import issue_token
from genesis.settings import Settings
from tests.api_process import ApiProcess, running_api
from tests.conftest import JWT_SECRET

HEADER_TIMEOUT = 1.0
KEEPALIVE_TIMEOUT = 3.0
NEVER = 20.0  # far beyond both timeouts: a connection still open then is a defect


@pytest.fixture
async def api(database_url: str) -> ApiProcess:  # type: ignore[misc]
    env = {"API_HEADER_TIMEOUT": str(HEADER_TIMEOUT), "API_KEEPALIVE_TIMEOUT": str(KEEPALIVE_TIMEOUT)}
    async with running_api(database_url, **env) as process:
        yield process


async def _closed_after(reader: asyncio.StreamReader) -> float:
    """Seconds until the server closes the connection (reading and dropping anything it sends)."""
    started = time.monotonic()
    async with asyncio.timeout(NEVER):
        while await reader.read(65536):
            pass
    return time.monotonic() - started


async def _exchange(api: ApiProcess, head: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    writer.write(head)
    status_line = await reader.readline()
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    writer.close()
    return int(status_line.split()[1]), headers, body


def _cut_at_the_header_timeout(waited: float) -> bool:
    """Closed by the head timer, long before the keep-alive timeout would have closed it."""
    return HEADER_TIMEOUT * 0.9 <= waited < (HEADER_TIMEOUT + KEEPALIVE_TIMEOUT) / 2


async def _answered(reader: asyncio.StreamReader) -> None:
    """Reads one whole response (any status) of a kept-alive connection."""
    assert (await reader.readline()).startswith(b"HTTP/1.1 ")
    length = 0
    while (line := await reader.readline()) != b"\r\n":
        name, _, value = line.decode().partition(":")
        length = int(value) if name.lower() == "content-length" else length
    await reader.readexactly(length)


async def test_a_connection_that_sends_nothing_is_cut_off_at_the_header_timeout(api: ApiProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    waited = await _closed_after(reader)
    assert _cut_at_the_header_timeout(waited), waited
    writer.close()


GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
BODY = b'{"a": "\r\n\r\n"}'  # a blank line inside a body does not end anything
POST = b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


CHUNKED = b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    "first", [GET, POST, CHUNKED], ids=["after a GET", "after a POST with a body", "after a chunked POST"]
)
async def test_half_a_pipelined_head_is_cut_off_at_the_header_timeout(api: ApiProcess, first: bytes) -> None:
    """The second head's first bytes came with the first request: its timer starts when that request is served,
    although no byte arrives after it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    writer.write(first + b"GET /healthz HTTP/1.1\r\nHo")
    await writer.drain()
    await _answered(reader)
    waited = await _closed_after(reader)
    assert _cut_at_the_header_timeout(waited), waited
    writer.close()


async def test_whole_pipelined_requests_are_served_and_the_connection_then_idles(api: ApiProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    writer.write(GET + b"\r\n" + POST + GET)  # a blank line between requests is allowed (RFC 9112, 2.2)
    await writer.drain()
    for _ in range(3):
        await _answered(reader)
    waited = await _closed_after(reader)
    assert KEEPALIVE_TIMEOUT * 0.9 <= waited < NEVER, waited
    writer.close()


async def test_half_a_request_head_is_cut_off_at_the_header_timeout(api: ApiProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    waited = await _closed_after(reader)
    assert HEADER_TIMEOUT * 0.9 <= waited < KEEPALIVE_TIMEOUT, waited
    writer.close()


async def test_a_head_trickled_a_byte_at_a_time_is_cut_off_too(api: ApiProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    started = time.monotonic()
    closed = False
    try:
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 100:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.1)
            if time.monotonic() - started > NEVER:
                break
    except ConnectionError:
        closed = True
    if not closed:
        await _closed_after(reader)
    assert time.monotonic() - started < KEEPALIVE_TIMEOUT + 1
    writer.close()


async def test_an_idle_keep_alive_connection_is_closed_at_the_keepalive_timeout(api: ApiProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    while (await reader.readline()) != b"\r\n":
        pass
    waited = await _closed_after(reader)
    # Idle between requests is the keep-alive timeout's business, not the head timer's.
    assert KEEPALIVE_TIMEOUT * 0.9 <= waited < NEVER, waited
    writer.close()


async def test_a_slow_but_whole_head_and_a_second_request_are_served(api: ApiProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    for _ in range(2):
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        await asyncio.sleep(HEADER_TIMEOUT / 3)
        writer.write(b"Host: x\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        while (await reader.readline()) != b"\r\n":
            pass
        await reader.readexactly(len(b'{"status": "ok"}'))
        await asyncio.sleep(HEADER_TIMEOUT * 1.5)  # idle, not a stalled head
    writer.close()


async def test_headers_up_to_16_kib_get_the_json_shape(api: ApiProcess) -> None:
    token = issue_token(Settings(jwt_secret=JWT_SECRET), "hostile")
    url = f"/genesis/sessions/{uuid.uuid4()}/commands"
    body = b'{"command_type": "RequestConceptGeneration", "payload": {}}'
    head = (
        f"POST {url} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Idempotency-Key: {'k' * 9000}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    status, headers, answer = await _exchange(api, head + body)
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert json.loads(answer)["error_code"] == "HEADER_TOO_LARGE"

    status, headers, answer = await _exchange(
        api, f"GET {url[:-9]} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {'a' * 15000}\r\n\r\n".encode()
    )
    assert (status, json.loads(answer)["error_code"]) == (401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    "head",
    [
        f"GET /healthz HTTP/1.1\r\nHost: x\r\nIdempotency-Key: {'k' * 20000}\r\n\r\n",
        f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {'b' * 20000}\r\n\r\n",
        f"GET /healthz?{'q' * 20000} HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["Idempotency-Key", "another header", "request line"],
)
async def test_a_head_beyond_16_kib_gets_the_json_shape_too(api: ApiProcess, head: str) -> None:
    """aiohttp's parser refuses it before the app sees it (memory stays bounded); the answer is still the service's
    (running_api asserts no traceback was logged)."""
    status, headers, answer = await _exchange(api, head.encode())
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    body = json.loads(answer)
    assert body["error_code"] == "HEADER_TOO_LARGE"
    assert isinstance(body["message"], str)


async def test_a_request_aiohttp_cannot_parse_gets_the_json_shape(api: ApiProcess) -> None:
    status, headers, answer = await _exchange(api, b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert set(json.loads(answer)) == {"error_code", "message"}


@pytest.mark.parametrize("coding", ["br", "zstd"])
async def test_a_content_encoding_it_does_not_decode_is_a_json_400_saying_which_it_does(
    api: ApiProcess, coding: str
) -> None:
    head = (
        b"POST /genesis/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: %s\r\nContent-Length: 2\r\n\r\n{}" % coding.encode()
    )
    status, headers, body = await _exchange(api, head)
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    refused = json.loads(body)
    assert refused["error_code"] == "BAD_REQUEST"
    assert "gzip, deflate" in refused["message"]
    assert "install" not in refused["message"]


async def test_an_unknown_expectation_is_ignored_on_a_route_and_a_json_417_on_none(api: ApiProcess) -> None:
    status, _, body = await _exchange(api, b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: banana\r\n\r\n")
    assert status == 200, body
    for head in (b"GET /nope HTTP/1.1\r\n", b"DELETE /healthz HTTP/1.1\r\n"):  # no route; not this method
        status, headers, body = await _exchange(api, head + b"Host: x\r\nExpect: banana\r\n\r\n")
        assert status == 417, (head, body)
        assert headers["content-type"].startswith("application/json"), head
        assert json.loads(body)["error_code"] == "EXPECTATION_FAILED"
