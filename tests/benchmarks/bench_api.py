"""`make bench-api`: HTTP commands/s against the raw submit_command rate, measured in the same run.

The API runs as the real `genesis api` process; the load comes from tests/benchmarks/loadgen.py
in a process of its own (each client walking fresh sessions through the flow for 10 s), at 16, 64
and 256 clients (`BENCH_HTTP_CLIENTS`). The baseline is the same flow as SQL calls over asyncpg at
16 connections, and the SQL path under pgbench (tests/benchmarks/pgbench.py). Then the HTTP run
again against two more `genesis api` processes on the same database: one with tracing off (no
OTEL_* settings) and one exporting every span over OTLP/HTTP to a local receiver
(tests/benchmarks/otlp_sink.py); `BENCH_TRACING_ROUNDS=0` skips that part. PostgreSQL is
DATABASE_URL's server when set, else an embedded one. Prints the figures, the load average with
each, and the ratios HTTP / raw and tracing on / off. For each HTTP figure it also says what the API's
PostgreSQL backends were doing (tests/benchmarks/waits.py): at 64 and 256 clients they mostly wait
for NOTIFY's commit lock.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from tests.benchmarks import bench_tracing, pgbench, waits
from tests.benchmarks.harness import USER, Stack, api_stack, cpu_seconds, postmaster_pid, say, server_cpu_seconds

CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "16"))
HTTP_CLIENTS = [int(n) for n in os.environ.get("BENCH_HTTP_CLIENTS", "16,64,256").split(",")]
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
SESSIONS = int(os.environ.get("BENCH_SESSIONS", "8000"))
ROUNDS = int(os.environ.get("BENCH_TRACING_ROUNDS", "2"))  # turns of tracing off / on / on sampled


async def sessions(dsn: str, count: int) -> list[str]:
    """`count` fresh sessions, then the database settled: every figure starts from the same state."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT create_session($1) ->> 'id' AS id FROM generate_series(1, $2)", USER, count)
        # Without this, whichever figure an autovacuum, an autoanalyze (which also replans every
        # backend's cached statements) or a checkpoint (full-page images in the WAL of the pages
        # written next) falls into runs slower than the others: the later client counts, always.
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return [r["id"] for r in rows]


def load(
    mode: str, target: str, session_ids: list[str], env: dict[str, str], workdir: Path, clients: int = CONCURRENCY
) -> dict[str, Any]:
    path = workdir / f"sessions-{mode}.json"
    path.write_text(json.dumps(session_ids))
    say(f"{mode}: {clients} clients for {SECONDS:g}s …")
    out = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.loadgen", mode, target, str(path), str(clients), str(SECONDS)],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    result["load"] = os.getloadavg()[0]
    return result


def row(name: str, r: dict[str, Any]) -> str:
    figures = f"{r['per_second']:>12.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['requests']:>10}{r['load']:>7.1f}"
    per_xact = (
        f"{r['per_xact']:>8.1f}{r['per_write_xact']:>8.1f}{r['api_cpu_us']:>9.0f}{r['pg_cpu_us']:>8.0f}"
        f"{r['client_cpu_us']:>10.0f}"
        if "per_xact" in r
        else ""
    )
    return f"{name:<38}{figures}{per_xact}  {r['statuses']}"


HEADER = (f"{'path':<38}{'commands/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}{'load':>7}{'cmd/tx':>8}"
          f"{'cmd/wtx':>8}{'API µs':>9}{'PG µs':>8}{'client µs':>10}  statuses")  # fmt: skip
# cmd/tx: commands per xact_commit of the database (pg_stat_database). It counts, besides the writes, one commit
# per notification the API's LISTEN backend reads (PostgreSQL reads its queue in a transaction of its own), so
# one command per transaction shows as 0.5. cmd/wtx: commands per write transaction (WRITERS). CPU per command of
# the API process, of the PostgreSQL server's processes (nan when the server is not on this machine), and of the
# load generator: on a small machine the three share the cores, so their sum says where the ceiling is.


# A backend reports its statistics when it has been idle a while (PostgreSQL's PGSTAT_IDLE_INTERVAL, 10 s): the
# API's pool connections, idle after a figure, have all reported theirs by then.
STATS_SETTLE = float(os.environ.get("BENCH_STATS_SETTLE", "11"))


async def commits(dsn: str) -> tuple[int, int]:
    """The database's committed transactions so far, and its newest event's id."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),"
            " (SELECT coalesce(max(id), 0) FROM domain_events)"
        )
        assert row is not None
        return int(row[0]), int(row[1])
    finally:
        await conn.close()


# The write transactions that recorded a figure's commands: an event's metadata holds now(), its transaction's
# start, so distinct values are distinct transactions (two starting in the same microsecond would count as one).
WRITERS = """
    SELECT count(DISTINCT e.correlation_id), count(DISTINCT e.metadata ->> 'timestamp')
      FROM domain_events e WHERE e.id > $1
"""


async def writers(dsn: str, after_event: int) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(WRITERS, after_event)
        assert row is not None
        return int(row[0]), int(row[1])
    finally:
        await conn.close()


def measure(stack: Stack) -> tuple[dict[int, dict[str, Any]], dict[str, Any], dict[str, Any] | None]:
    """HTTP at each of HTTP_CLIENTS, raw submit_command and (where it exists) raw submit_commands at CONCURRENCY,
    each on fresh sessions. For HTTP: commands per committed transaction of the database (group commit; the wait
    sampler's own ~50 tx/s included), commands per write transaction, and the API process's CPU per command."""
    http = {}
    postmaster = asyncio.run(postmaster_pid(stack.dsn))
    for clients in HTTP_CLIENTS:
        say(f"creating {SESSIONS} sessions …")
        session_ids = asyncio.run(sessions(stack.dsn, SESSIONS))
        time.sleep(STATS_SETTLE)
        (xacts, newest), cpu = asyncio.run(commits(stack.dsn)), cpu_seconds(stack.api_pid)
        server = server_cpu_seconds(postmaster) if postmaster else math.nan
        with waits.sampled(stack.dsn) as counts:
            r = http[clients] = load("http", stack.base_url, session_ids, stack.env, stack.workdir, clients)
        r["api_cpu_us"] = (cpu_seconds(stack.api_pid) - cpu) / max(1, r["requests"]) * 1e6
        server = (server_cpu_seconds(postmaster) if postmaster else math.nan) - server
        r["pg_cpu_us"] = server / max(1, r["requests"]) * 1e6
        time.sleep(STATS_SETTLE)
        r["per_xact"] = r["requests"] / max(1, asyncio.run(commits(stack.dsn))[0] - xacts)
        recorded, transactions = asyncio.run(writers(stack.dsn, newest))
        r["per_write_xact"] = recorded / max(1, transactions)
        r["waits"] = waits.summary(counts)
    raw = load("sql", stack.dsn, asyncio.run(sessions(stack.dsn, SESSIONS)), stack.env, stack.workdir)
    batch = None
    if asyncio.run(has_batch_path(stack.dsn)):
        batch = load("sqlbatch", stack.dsn, asyncio.run(sessions(stack.dsn, SESSIONS)), stack.env, stack.workdir)
    return http, raw, batch


async def has_batch_path(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return bool(await conn.fetchval("SELECT to_regproc('submit_commands') IS NOT NULL"))
    finally:
        await conn.close()


def pgbench_lines(dsn: str) -> list[str]:
    asyncio.run(pgbench.prepare(dsn))
    lines = [f"{'pgbench (' + str(CONCURRENCY) + ' clients)':<38}{'tx/s':>12}{'load':>7}"]
    for name in pgbench.SCRIPTS:
        say(f"pgbench {name}: {CONCURRENCY} clients for {SECONDS:g}s …")
        tps = pgbench.run(dsn, name, CONCURRENCY, SECONDS)
        lines.append(f"{name:<38}{tps:>12.0f}{os.getloadavg()[0]:>7.1f}")
    return lines


def main() -> None:
    with api_stack("api") as stack:
        http, raw, batch = measure(stack)
        sql_path = pgbench_lines(stack.dsn)
        tracing: list[str] = []
        if ROUNDS > 0:
            # Tracing off against on, each in a `genesis api` of its own on the same database, in turns.
            fresh = bench_tracing.new_sessions_from(stack.dsn, SESSIONS, sessions)
            tracing = bench_tracing.compare(
                stack, lambda url, ids: load("http", url, ids, stack.env, stack.workdir), fresh, ROUNDS
            )
    print(HEADER)
    for clients, r in http.items():
        print(row(f"HTTP (genesis api), {clients} clients", r))
    print(row(f"raw submit_command (asyncpg), {CONCURRENCY}", raw))
    if batch is not None:
        print(row(f"raw submit_commands ×{os.environ.get('BENCH_BATCH_SIZE', '32')}, {CONCURRENCY}", batch))
        print(f"raw batch / raw single = {batch['per_second'] / raw['per_second']:.2f}")
    print(f"PostgreSQL backends' CPU per raw command: {raw['backend_cpu_us']:.0f} µs")
    base = http.get(CONCURRENCY, next(iter(http.values())))
    ratio = base["per_second"] / raw["per_second"]
    print(f"ratio HTTP / raw = {ratio:.2f}   ({SECONDS:g}s each, {os.cpu_count()} cores)")
    for clients, r in http.items():
        print(f"HTTP at {clients} clients / at {CONCURRENCY}: {r['per_second'] / base['per_second']:.2f}"
              f"   the API's backends: {r['waits']}")  # fmt: skip
    print("\n".join(sql_path + tracing))


if __name__ == "__main__":
    main()
