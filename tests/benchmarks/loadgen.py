"""Load generator, run in its own process so it is not the server's bottleneck.

    python -m tests.benchmarks.loadgen http|sql|sqlbatch TARGET SESSIONS_FILE CONCURRENCY SECONDS

Each worker takes a fresh session from the shared list and walks it through the Genesis flow
(RequestConceptGeneration, SubmitFeedback, then ConfirmStage for each stage): every request is a
command the service accepts, mixing async (202) and sync (200) ones. `http` posts to the API at
TARGET (base URL; TOKEN from the environment); `sql` calls submit_command over asyncpg at
TARGET (a DSN), one statement each, as the API did before group commit; `sqlbatch` calls submit_commands with
BATCH_SIZE commands of as many sessions per statement (group commit's raw path; each command's latency is its
batch's). Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.relay_harness import STAGES

FLOW: list[tuple[str, dict[str, Any]]] = [
    ("RequestConceptGeneration", {"count": 3}),
    ("SubmitFeedback", {"feedback": "more mystery"}),
    *[("ConfirmStage", {"stage": stage, "data": {"note": stage.lower()}}) for stage in STAGES],
]

Send = Callable[[str, str, dict[str, Any]], Awaitable[int]]


async def run(send: Send, sessions: list[str], concurrency: int, seconds: float) -> dict[str, Any]:
    queue = iter(sessions)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        for session_id in queue:
            for command_type, payload in FLOW:
                if time.perf_counter() >= deadline:
                    return
                started = time.perf_counter()
                status = await send(session_id, command_type, payload)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    latencies.sort()
    ok = sum(n for s, n in statuses.items() if s in (200, 202))
    return {
        "requests": len(latencies),
        "ok": ok,
        "statuses": statuses,
        "seconds": elapsed,
        "per_second": ok / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        # The load generator's own CPU per request: it shares the machine with what it measures.
        "client_cpu_us": cpu / max(1, len(latencies)) * 1e6,
    }


async def http_mode(base_url: str, sessions: list[str], concurrency: int, seconds: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {os.environ['TOKEN']}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url, connector=connector, headers=headers) as http:

        async def send(session_id: str, command_type: str, payload: dict[str, Any]) -> int:
            body = {"command_type": command_type, "payload": payload}
            async with http.post(f"/genesis/sessions/{session_id}/commands", json=body) as response:
                await response.read()
                return response.status

        return await run(send, sessions, concurrency, seconds)


async def sql_mode(dsn: str, sessions: list[str], concurrency: int, seconds: float) -> dict[str, Any]:
    backends: list[int] = []

    async def init(conn: asyncpg.Connection[Any]) -> None:
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        backends.append(await conn.fetchval("SELECT pg_backend_pid()"))

    # The same call as the API's: one statement, one REPEATABLE READ transaction.
    pool = await asyncpg.create_pool(
        dsn, min_size=concurrency, max_size=concurrency, init=init,
        server_settings={"default_transaction_isolation": "repeatable read"},
    )  # fmt: skip
    user = os.environ.get("BENCH_USER", "bench")

    async def send(session_id: str, command_type: str, payload: dict[str, Any]) -> int:
        for _ in range(8):
            try:
                row = await pool.fetchrow(
                    "SELECT * FROM submit_command($1, $2, $3, $4, NULL, NULL)", session_id, command_type, payload, user
                )
                return 202 if row is not None and row["is_async"] else 200
            except asyncpg.SerializationError:
                continue
        return 503

    try:
        before = backend_cpu(backends)
        result = await run(send, sessions, concurrency, seconds)
        # The backends' own CPU per command: what the functions cost, whatever else the machine runs.
        result["backend_cpu_us"] = (backend_cpu(backends) - before) / max(1, result["requests"]) * 1e6
        return result
    finally:
        await pool.close()


BATCH_SIZE = int(os.environ.get("BENCH_BATCH_SIZE", "32"))


async def sqlbatch_mode(dsn: str, sessions: list[str], concurrency: int, seconds: float) -> dict[str, Any]:
    """Each connection walks BATCH_SIZE sessions through the flow in step: one submit_commands per step."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    user = os.environ.get("BENCH_USER", "bench")
    queue = iter(sessions)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            group = [s for _, s in zip(range(BATCH_SIZE), queue, strict=False)]
            if not group:
                return
            for command_type, payload in FLOW:
                if time.perf_counter() >= deadline:
                    return
                batch = [{"session_id": s, "command_type": command_type, "payload": payload, "user_id": user}
                         for s in group]  # fmt: skip
                started = time.perf_counter()
                rows = await pool.fetch("SELECT * FROM submit_commands($1::jsonb)", json.dumps(batch))
                latencies.extend([time.perf_counter() - started] * len(rows))
                for row in rows:
                    status = 409 if row["error_sqlstate"] else (202 if row["is_async"] else 200)
                    statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await pool.close()
    elapsed = time.perf_counter() - started
    latencies.sort()
    ok = sum(n for s, n in statuses.items() if s in (200, 202))
    return {
        "requests": len(latencies), "ok": ok, "statuses": statuses, "seconds": elapsed, "per_second": ok / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }  # fmt: skip


def backend_cpu(pids: list[int]) -> float:
    """User + system CPU seconds of these PostgreSQL backends (Linux /proc; the server is local)."""
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def main() -> None:
    mode, target, sessions_file, concurrency, seconds = sys.argv[1:6]
    with open(sessions_file) as f:
        sessions = json.load(f)
    runner = {"http": http_mode, "sql": sql_mode, "sqlbatch": sqlbatch_mode}[mode]
    result = asyncio.run(runner(target, sessions, int(concurrency), float(seconds)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
