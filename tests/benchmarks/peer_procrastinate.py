"""procrastinate's `defer_async` rate: run by `make bench-peers` with the peers' virtualenv's Python.

    python tests/benchmarks/peer_procrastinate.py DSN PRODUCERS SECONDS

Applies procrastinate's schema to DSN's (empty) database, then PRODUCERS coroutines defer jobs
for SECONDS over a pool of as many connections; prints one JSON line. It imports nothing of ours:
procrastinate lives only in that virtualenv.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import procrastinate  # type: ignore[import-not-found]


def noop(n: int) -> None:
    pass


async def main(dsn: str, producers: int, seconds: float) -> dict[str, Any]:
    connector = procrastinate.PsycopgConnector(conninfo=dsn, min_size=producers, max_size=producers)
    app = procrastinate.App(connector=connector)
    task = app.task(name="bench_noop", queue="bench")(noop)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds

        async def producer() -> None:
            n = 0
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await task.defer_async(n=n)
                latencies.append(time.perf_counter() - started)
                n += 1

        started = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(producers)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "version": procrastinate.__version__ if hasattr(procrastinate, "__version__") else "?",
        "jobs": len(latencies),
        "per_second": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))))
