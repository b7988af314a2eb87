"""Where a command's time goes inside PostgreSQL (issue 15): `python -m tests.benchmarks.profile_write`.

Starts an embedded PostgreSQL with pg_stat_statements (`track = all`, so the statements inside the
plpgsql functions are counted too) and `track_functions = all`, then runs ROUNDS sessions through
the flow on one connection, one command at a time (cost, not contention), and prints each
statement's mean time and each function's self time per call. Then the same flow's wall time per
command with each secondary index dropped in turn (`PROFILE_DROPS=0` skips that part).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from genesis.local.services import LocalPostgres
from tests.benchmarks.loadgen import FLOW, backend_cpu
from tests.conftest import fresh_database, with_database

ROUNDS = int(os.environ.get("PROFILE_ROUNDS", "400"))
DROPS = os.environ.get("PROFILE_DROPS", "1") == "1"
USER = "profile"


async def flow(conn: asyncpg.Connection[Any], rounds: int) -> float:
    """Seconds per command (create_session counted as one) over `rounds` sessions."""
    started = time.perf_counter()
    for _ in range(rounds):
        session = json.loads(await conn.fetchval("SELECT create_session($1)", USER))
        for command_type, payload in FLOW:
            await conn.fetchrow(
                "SELECT * FROM submit_command($1, $2, $3::jsonb, $4)", session["id"], command_type,
                json.dumps(payload), USER,
            )  # fmt: skip
    return (time.perf_counter() - started) / (rounds * (len(FLOW) + 1))


async def statements(conn: asyncpg.Connection[Any]) -> None:
    rows = await conn.fetch(
        """SELECT calls, round(total_exec_time::numeric / calls * 1000, 1) AS mean_us,
                  round(total_exec_time)::bigint AS total_ms, round(wal_bytes / calls)::bigint AS wal_per_call,
                  toplevel,
                  regexp_replace(query, '\\s+', ' ', 'g') AS query
             FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND calls >= $1
            ORDER BY total_exec_time DESC LIMIT 30""",
        ROUNDS,
    )
    print(f"{'calls':>7}{'mean µs':>9}{'total ms':>10}{'WAL B/call':>11} top  statement")
    for r in rows:
        top = "yes" if r["toplevel"] else "   "
        print(f"{r['calls']:>7}{r['mean_us']:>9}{r['total_ms']:>10}{r['wal_per_call']:>11} {top}  {r['query'][:150]}")
    rows = await conn.fetch(
        """SELECT funcname, calls, round((self_time / calls * 1000)::numeric, 1) AS self_us,
                  round((total_time / calls * 1000)::numeric, 1) AS total_us
             FROM pg_stat_user_functions WHERE calls >= $1 ORDER BY self_time DESC""",
        ROUNDS,
    )
    print(f"\n{'function':<28}{'calls':>7}{'self µs':>9}{'total µs':>10}")
    for r in rows:
        print(f"{r['funcname']:<28}{r['calls']:>7}{r['self_us']:>9}{r['total_us']:>10}")


async def secondary_indexes(conn: asyncpg.Connection[Any]) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        """SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
             FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
            WHERE t.relnamespace = 'public'::regnamespace AND NOT i.indisprimary
              AND NOT i.indisunique AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)
              AND t.relname <> 'schema_migrations' ORDER BY 1"""
    )
    return [(r["name"], r["def"]) for r in rows]


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="profile-write-"))
    server = LocalPostgres(workdir / "pg")
    admin = server.start()
    try:
        conn = await asyncpg.connect(admin)
        for setting in ("shared_preload_libraries = 'pg_stat_statements'", "pg_stat_statements.track = 'all'",
                        "track_functions = 'all'", "pg_stat_statements.track_planning = off"):  # fmt: skip
            await conn.execute(f"ALTER SYSTEM SET {setting}")
        await conn.close()
        server.restart()
        dsn = await fresh_database(admin, "genesis_profile", log=lambda _: None)
        conn = await asyncpg.connect(dsn)
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await flow(conn, ROUNDS // 4)  # warm: plans cached, tables past their first pages
        await conn.execute("SELECT pg_stat_statements_reset(), pg_stat_reset()")
        pid = [await conn.fetchval("SELECT pg_backend_pid()")]
        cpu = backend_cpu(pid)
        wall = await flow(conn, ROUNDS)
        cpu = (backend_cpu(pid) - cpu) / (ROUNDS * (len(FLOW) + 1))
        print(f"{1e6 * wall:.0f} µs per command (backend CPU {1e6 * cpu:.0f} µs), sequential, {ROUNDS} sessions × "
              f"{len(FLOW) + 1} commands; load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip
        await statements(conn)
        await conn.close()
        if DROPS:
            await drops(admin)
    finally:
        server.stop()


async def drops(admin: str) -> None:
    """The flow's time per command with each secondary index dropped in turn, against none dropped."""
    dsn = await fresh_database(admin, "genesis_profile_drop", log=lambda _: None)
    conn = await asyncpg.connect(dsn)
    indexes = await secondary_indexes(conn)
    await conn.close()
    print("\nwall µs per command (sequential), each secondary index dropped in turn:")
    for name, definition in [("(none)", ""), *indexes, ("(none)", "")]:
        dsn = await fresh_database(admin, "genesis_profile_drop", log=lambda _: None)
        conn = await asyncpg.connect(with_database(dsn, "genesis_profile_drop"))
        if definition:
            await conn.execute(f"DROP INDEX {name}")
        await flow(conn, ROUNDS // 4)
        print(f"  {1e6 * await flow(conn, ROUNDS // 2):7.0f}  {name}")
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
