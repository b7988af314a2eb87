"""`make bench-api`: HTTP commands/s against the raw submit_command rate, measured in the same run.

The API runs as the real `genesis api` process; the load comes from tests/benchmarks/loadgen.py
in a process of its own (16 concurrent clients for 10 s, each walking fresh sessions through the
flow). The baseline is the same flow as SQL calls over asyncpg at the same concurrency. Then the
HTTP run again against two more `genesis api` processes on the same database: one with tracing off
(no OTEL_* settings) and one exporting every span over OTLP/HTTP to a local receiver
(tests/benchmarks/otlp_sink.py). PostgreSQL is DATABASE_URL's server when set, else an embedded one.
Prints the figures and the ratios HTTP / raw and tracing on / off.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg

from tests.benchmarks import bench_tracing
from tests.benchmarks.harness import USER, api_stack, say

CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "16"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
SESSIONS = int(os.environ.get("BENCH_SESSIONS", "8000"))
ROUNDS = int(os.environ.get("BENCH_TRACING_ROUNDS", "2"))  # turns of tracing off / on / on sampled


async def sessions(dsn: str, count: int) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT create_session($1) ->> 'id' AS id FROM generate_series(1, $2)", USER, count)
    finally:
        await conn.close()
    return [r["id"] for r in rows]


def load(mode: str, target: str, session_ids: list[str], env: dict[str, str], workdir: Path) -> dict[str, Any]:
    path = workdir / f"sessions-{mode}.json"
    path.write_text(json.dumps(session_ids))
    say(f"{mode}: {CONCURRENCY} clients for {SECONDS:g}s …")
    out = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.loadgen", mode, target, str(path), str(CONCURRENCY), str(SECONDS)],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> None:
    with api_stack("api") as stack:
        say(f"creating {2 * SESSIONS} sessions …")
        http_sessions, sql_sessions = (asyncio.run(sessions(stack.dsn, SESSIONS)) for _ in range(2))
        http = load("http", stack.base_url, http_sessions, stack.env, stack.workdir)
        sql = load("sql", stack.dsn, sql_sessions, stack.env, stack.workdir)
        # Tracing off against on, each in a `genesis api` of its own on the same database, in turns.
        fresh = bench_tracing.new_sessions_from(stack.dsn, SESSIONS, sessions)
        tracing = bench_tracing.compare(
            stack, lambda url, ids: load("http", url, ids, stack.env, stack.workdir), fresh, ROUNDS
        )
    ratio = http["per_second"] / sql["per_second"]
    print(f"{'path':<34}{'commands/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}  statuses")
    for name, r in (("HTTP (genesis api)", http), ("raw submit_command (asyncpg)", sql)):
        figures = f"{r['per_second']:>12.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['requests']:>10}"
        print(f"{name:<34}{figures}  {r['statuses']}")
    print(f"ratio HTTP / raw = {ratio:.2f}   (concurrency {CONCURRENCY}, {SECONDS:g}s each, {os.cpu_count()} cores)")
    print("\n".join(tracing))


if __name__ == "__main__":
    main()
