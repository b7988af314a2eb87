"""SSE reader at scale, in its own process: `STREAMS_PER_SESSION` streams on each of many sessions.

    python -m tests.benchmarks.sse_scale_reader BASE_URL STREAMS_PER_SESSION < sessions (one "user session_id" a line)

Each session belongs to a user of its own (a user with a few tabs open), so the per-user cap is not what is
measured; tokens are signed with JWT_SECRET from the environment. Prints "ready" once every stream is open; then
reads a line from stdin with the number of deliveries to expect, and prints one JSON line once that many have
arrived or 30 s have passed: latencies from the writer's `time.time()` carried in the event (taken before its
statement), and each receipt's time by that stamp, so the bench can measure from the commit's return too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from typing import Any

import aiohttp

from genesis.auth.tokens import issue_token
from genesis.settings import Settings

OPEN_CONCURRENCY = 100  # streams opened at once: each costs the API a replay query on its 8-connection pool


def _stamp(event: dict[str, Any]) -> str | None:
    """The writer's time.time() before the statement, as it wrote it: also the event's key for the writer."""
    payload = event.get("payload", {})
    raw = payload.get("feedback") or payload.get("result", {}).get("t")
    return str(raw) if raw else None


async def main() -> None:
    base_url, per_session = sys.argv[1], int(sys.argv[2])
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    owners = [line.split() for line in sys.stdin.readline().split(";") if line.strip()]
    settings = Settings(jwt_secret=os.environ["JWT_SECRET"])
    latencies: list[float] = []
    receipts: list[tuple[str, float]] = []  # (stamp, time.time() at receipt), for commit → receipt
    arrived = asyncio.Event()
    expected = [0]

    async def read(response: aiohttp.ClientResponse) -> None:
        with contextlib.suppress(aiohttp.ClientError):  # the API went away: the summary says what arrived
            await read_lines(response)

    async def read_lines(response: aiohttp.ClientResponse) -> None:
        async for raw in response.content:
            if raw.startswith(b"data: "):
                stamp = _stamp(json.loads(raw[6:]))
                if stamp is not None:
                    now = time.time()
                    latencies.append(now - float(stamp))
                    receipts.append((stamp, now))
                    if expected[0] and len(latencies) >= expected[0]:
                        arrived.set()

    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as http:

        async def open_stream(user: str, session_id: str) -> aiohttp.ClientResponse:
            headers = {"Authorization": f"Bearer {issue_token(settings, user, 7200)}"}
            async with gate:
                response = await http.get(f"/genesis/sessions/{session_id}/events/stream", headers=headers)
                assert response.status == 200, (response.status, await response.text())
                while not (await response.content.readline()).startswith(b"data: "):
                    pass  # the replayed Created event: the stream is live
            return response

        responses = await asyncio.gather(*(open_stream(u, s) for u, s in owners for _ in range(per_session)))
        readers = [asyncio.create_task(read(r)) for r in responses]
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        expected[0] = int(await loop.run_in_executor(None, sys.stdin.readline))
        if len(latencies) < expected[0]:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), 30)
        for task in readers:
            task.cancel()
        for response in responses:
            response.close()
    latencies.sort()
    n = len(latencies)
    print(json.dumps({
        "streams": len(responses), "expected": expected[0], "deliveries": n,
        "p50_ms": 1000 * latencies[n // 2] if n else 0.0,
        "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else 0.0,
        "max_ms": 1000 * latencies[-1] if n else 0.0, "receipts": receipts,
    }), flush=True)  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
