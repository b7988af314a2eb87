"""SSE fan-out reader, in its own process: opens N streams on one session and times each event.

    python -m tests.benchmarks.sse_reader BASE_URL SESSION_ID STREAMS EVENTS

TOKEN comes from the environment. Each event's payload carries the writer's `time.time()` taken
just before its commit; latency is receipt minus that. Prints "ready" once every stream is open,
then one JSON line with the latencies' summary.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import aiohttp


def sent_at(event: dict[str, Any]) -> float | None:
    payload = event.get("payload", {})
    raw = payload.get("feedback") or payload.get("result", {}).get("t")
    return float(raw) if raw else None


async def read(response: aiohttp.ClientResponse, expected: int, latencies: list[float]) -> None:
    got = 0
    async for raw in response.content:
        line = raw.decode()
        if not line.startswith("data: "):
            continue
        t = sent_at(json.loads(line[6:]))
        if t is None:
            continue  # the replayed Created event
        latencies.append(time.time() - t)
        got += 1
        if got == expected:
            return


async def main() -> None:
    base_url, session_id, streams, events = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    headers = {"Authorization": f"Bearer {os.environ['TOKEN']}"}
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(base_url, connector=connector, headers=headers, timeout=timeout) as http:
        responses = await asyncio.gather(
            *(http.get(f"/genesis/sessions/{session_id}/events/stream") for _ in range(streams))
        )
        for response in responses:  # each has replayed the Created event before going live
            assert response.status == 200, (response.status, await response.text())
            while not (await response.content.readline()).startswith(b"data: "):
                pass
        print("ready", flush=True)
        await asyncio.wait_for(asyncio.gather(*(read(r, events, latencies) for r in responses)), 300)
    latencies.sort()
    n = len(latencies)
    print(json.dumps({
        "streams": streams, "events": events, "deliveries": n,
        "p50_ms": 1000 * latencies[n // 2], "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))],
        "max_ms": 1000 * latencies[-1],
    }), flush=True)  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
