"""`make bench-api`: HTTP commands/s against the raw submit_command rate, measured in the same run.

The API runs as the real `genesis api` process; the load comes from tests/benchmarks/loadgen.py
in a process of its own (16 concurrent clients for 10 s, each walking fresh sessions through the
flow). The baseline is the same flow as SQL calls over asyncpg at the same concurrency. PostgreSQL
is DATABASE_URL's server when set, else an embedded one. Prints both, and their ratio.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import asyncpg

from genesis.localservices import LocalPostgres, free_port, wait_for_port
from genesis.migrate import migrate
from genesis.settings import Settings
from genesis.tokens import issue_token
from tests.conftest import with_database

CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "16"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
SESSIONS = int(os.environ.get("BENCH_SESSIONS", "8000"))
SECRET = "bench-secret-" + "x" * 32
USER = "bench"


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def prepare(admin_url: str) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute("DROP DATABASE IF EXISTS genesis_bench WITH (FORCE)")
        await conn.execute("CREATE DATABASE genesis_bench")
    finally:
        await conn.close()
    dsn = with_database(admin_url, "genesis_bench")
    await migrate(dsn, log=say)
    return dsn


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
    server = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        say("starting an embedded PostgreSQL …")
        server = LocalPostgres(workdir / "pg")
        admin_url = server.start()
    api = None
    try:
        dsn = asyncio.run(prepare(admin_url))
        say(f"creating {2 * SESSIONS} sessions …")
        http_sessions = asyncio.run(sessions(dsn, SESSIONS))
        sql_sessions = asyncio.run(sessions(dsn, SESSIONS))
        port = free_port()
        env = {**os.environ, "DATABASE_URL": dsn, "JWT_SECRET": SECRET, "API_PORT": str(port), "LOG_LEVEL": "WARNING",
               "TOKEN": issue_token(Settings(jwt_secret=SECRET), USER, 3600), "BENCH_USER": USER}  # fmt: skip
        api = subprocess.Popen([str(Path(sys.executable).with_name("genesis")), "api"], env=env)
        wait_for_port(port)
        http = load("http", f"http://127.0.0.1:{port}", http_sessions, env, workdir)
        sql = load("sql", dsn, sql_sessions, env, workdir)
    finally:
        if api is not None:
            api.send_signal(signal.SIGTERM)
            api.wait(15)
        if server is not None:
            server.stop()
    ratio = http["per_second"] / sql["per_second"]
    print(f"{'path':<28}{'commands/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}  statuses")
    for name, r in (("HTTP (genesis api)", http), ("raw submit_command (asyncpg)", sql)):
        figures = f"{r['per_second']:>12.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['requests']:>10}"
        print(f"{name:<28}{figures}  {r['statuses']}")
    print(f"ratio HTTP / raw = {ratio:.2f}   (concurrency {CONCURRENCY}, {SECONDS:g}s each, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
