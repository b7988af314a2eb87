"""api.server's _Framing: whether bytes of a next head have arrived, followed from the raw bytes and the heads the
parser returns, however a stream of pipelined requests is cut into reads."""

from __future__ import annotations

import random
from dataclasses import dataclass

from aiohttp import HttpVersion11
from aiohttp.http_parser import RawRequestMessage
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from api.server import _Framing


@dataclass
class _Request:
    raw: bytes
    start: int  # of its first byte in the stream (after any blank line before it)
    head_end: int  # after its blank line
    head: RawRequestMessage


def _head(length: int | None, chunked: bool = False) -> RawRequestMessage:
    headers: CIMultiDict[str] = CIMultiDict({"Host": "x"})
    if length is not None:
        headers["Content-Length"] = str(length)
    proxy = CIMultiDictProxy(headers)
    return RawRequestMessage("POST", "/", HttpVersion11, proxy, (), False, None, False, chunked, URL("/"))


def _stream(bodies: list[bytes | None], blank_lines: bool) -> tuple[bytes, list[_Request]]:
    stream = b""
    requests = []
    for body in bodies:
        if blank_lines:
            stream += b"\r\n"
        head = b"POST / HTTP/1.1\r\nHost: x\r\n" + (b"Content-Length: %d\r\n" % len(body) if body is not None else b"")
        raw = head + b"\r\n" + (body or b"")
        requests.append(_Request(raw, len(stream), len(stream) + len(head) + 2, _head(len(body) if body else None)))
        stream += raw
    return stream, requests


def _feed(framing: _Framing, stream: bytes, requests: list[_Request], cuts: list[int]) -> None:
    """Feeds `stream` cut at `cuts`, checking after each read what the framing says against the truth."""
    start = 0
    for end in [*cuts, len(stream)]:
        heads = [r.head for r in requests if start < r.head_end <= end]
        framing.feed(stream[start:end], heads)
        expected = any(r.start < end < r.head_end for r in requests)
        assert (framing.in_head, framing.lost) == (expected, False), (stream[:end][-60:], cuts)
        start = end


BODIES: list[bytes | None] = [None, b'{"a": "\r\n\r\n"}', b"x", None, b"\r\n\r\n\r\n", b""]


def test_every_cut_into_two_reads() -> None:
    for blank_lines in (False, True):
        stream, requests = _stream(BODIES, blank_lines)
        for cut in range(1, len(stream)):
            _feed(_Framing(), stream, requests, [cut])


def test_random_cuts_into_many_reads() -> None:
    rng = random.Random(23)
    stream, requests = _stream(BODIES * 3, blank_lines=False)
    for _ in range(500):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 40)))
        _feed(_Framing(), stream, requests, cuts)


def test_a_head_cut_off_at_the_end_of_a_read_is_in_progress() -> None:
    framing = _Framing()
    framing.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HT", [_head(None)])
    assert framing.in_head
    framing.feed(b"TP/1.1\r\nHost: x\r\n\r", [])
    assert framing.in_head
    framing.feed(b"\n", [_head(None)])
    assert not framing.in_head


def test_a_framing_it_does_not_follow_is_lost() -> None:
    framing = _Framing()
    framing.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", [_head(None, chunked=True)])
    assert framing.lost
    framing.feed(b"GET / HT", [])
    assert framing.lost
