"""`make bench-gauges`: what one refresh of the outbox gauges costs with millions of rows waiting (issue 22).

An outbox as a long broker outage leaves it: GAUGE_SENT (1,000,000) SENT rows, then GAUGE_ROWS (5,000,000)
PENDING rows of GAUGE_ROWS / 5 sessions, each session with its head (as the relays admit them), one session
FAILED with its rows blocked behind it, ten sessions waiting for a retry and one batch of 500 claimed. The
rows are written straight into the table (triggers and the events' foreign key off for the load: the gauges
read neither), then vacuumed and analyzed as autovacuum would have.

Timed, each on its own connection as the refresher runs it: `outbox_stats()` (the exact count the gauges
were refreshed with before, "before") and `outbox_gauges()` (their refresh now, "after"), p50 and max of
GAUGE_RUNS, with the values of both side by side (the backlog is an estimate above 10,000 rows).
The goal: a refresh ≤ 50 ms at 5 M PENDING rows, under the refresher's 2 s statement timeout.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from genesis import db
from genesis.local.services import LocalPostgres
from tests.benchmarks.harness import say
from tests.conftest import fresh_database

ROWS = int(os.environ.get("GAUGE_ROWS", "5000000"))
SENT = int(os.environ.get("GAUGE_SENT", "1000000"))
RUNS = int(os.environ.get("GAUGE_RUNS", "20"))
CHUNK = 500_000

INSERT = """
    INSERT INTO event_outbox (event_id, topic, key, payload, status, sent_at)
    SELECT gen_random_uuid(), 'bench', 'session-' || (n % $3), jsonb_build_object('n', n, 'note', repeat('x', 200)),
           $4, CASE WHEN $4 = 'SENT' THEN now() END
      FROM generate_series($1::bigint, $2::bigint) AS n
"""


async def load(conn: asyncpg.Connection[Any]) -> None:
    await conn.execute("SET session_replication_role = replica")  # no insert trigger, no foreign key check
    for status, total, sessions in (("SENT", SENT, max(1, SENT // 100)), ("PENDING", ROWS, max(1, ROWS // 5))):
        for first in range(0, total, CHUNK):
            await conn.execute(INSERT, first, min(first + CHUNK, total) - 1, sessions, status)
            say(f"  {min(first + CHUNK, total):,} {status} rows")
    await conn.execute("RESET session_replication_role")
    say("heads for every session with PENDING rows, as the relays admit them …")
    await conn.execute(
        """INSERT INTO outbox_heads (key, head_id)
           SELECT key, min(id) FROM event_outbox WHERE status = 'PENDING' GROUP BY key"""
    )
    # One session FAILED (its rows blocked behind), ten waiting for a retry, one batch claimed.
    failed = await conn.fetchval("SELECT head_id FROM outbox_heads ORDER BY head_id LIMIT 1")
    await conn.execute(
        """UPDATE event_outbox SET status = 'FAILED', attempts = 4, last_error = 'E: bench', failed_at = now()
            WHERE id = $1""",
        failed,
    )
    await conn.execute("UPDATE outbox_heads SET blocked = true WHERE head_id = $1", failed)
    retrying = await conn.fetch("SELECT head_id FROM outbox_heads ORDER BY head_id OFFSET 1 LIMIT 10")
    ids = [r["head_id"] for r in retrying]
    await conn.execute(
        "UPDATE event_outbox SET attempts = 1, next_attempt_at = now() + interval '1 hour' WHERE id = ANY($1)", ids
    )
    await conn.execute(
        "UPDATE outbox_heads SET retry = true, due_at = now() + interval '1 hour' WHERE head_id = ANY($1)", ids
    )
    await conn.fetch("SELECT id FROM claim_outbox(500, '1 hour', false, 0)")
    say("VACUUM ANALYZE …")
    for table in ("event_outbox", "outbox_heads"):
        await conn.execute(f"VACUUM ANALYZE {table}")


async def timed(conn: asyncpg.Connection[Any], query: str, runs: int) -> tuple[list[float], dict[str, Any]]:
    times: list[float] = []
    row: Any = None
    for _ in range(runs):
        started = time.perf_counter()
        row = await conn.fetchrow(query)
        times.append((time.perf_counter() - started) * 1000)
    return times, dict(row)


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-gauges-"))
    postgres = LocalPostgres(workdir / "pg")
    try:
        admin = postgres.start()
        dsn = await fresh_database(admin, "genesis_bench_gauges", log=say)
        conn = await db.connect(dsn, application_name="bench")
        try:
            say(f"writing {SENT:,} SENT and {ROWS:,} PENDING outbox rows …")
            started = time.perf_counter()
            await load(conn)
            say(f"  loaded in {time.perf_counter() - started:.0f}s")
            exact_times, exact = await timed(conn, "SELECT * FROM outbox_stats()", max(2, RUNS // 5))
            fast_times, fast = await timed(conn, "SELECT * FROM outbox_gauges()", RUNS)
        finally:
            await conn.close()
    finally:
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"outbox gauges' refresh: {ROWS:,} PENDING rows ({ROWS // 5:,} sessions) after {SENT:,} SENT")
    print(f"  load average {os.getloadavg()}")
    for name, times in (("before: outbox_stats()", exact_times), ("after:  outbox_gauges()", fast_times)):
        print(f"  {name:<25} p50 {statistics.median(times):9.1f} ms   max {max(times):9.1f} ms   ({len(times)} runs)")
    print(f"  {'gauge':<28}{'outbox_stats()':>16}{'outbox_gauges()':>17}")
    for column, value in exact.items():
        print(f"  {column:<28}{value:>16,.0f}{fast[column]:>17,.0f}")
    print(f"  estimated: backlog {fast['pending_estimated']}, blocked {fast['blocked_estimated']}")


if __name__ == "__main__":
    asyncio.run(main())
