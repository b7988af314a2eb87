"""What a HOT settle would buy (issue 22 item 5): `python -m tests.benchmarks.profile_settle`.

`mark_outbox_sent` writes a new version of each ~1.3 KB row with new entries in the table's indexes:
never a HOT update, because `status` is in the predicates of four partial indexes and `sent_at` is
indexed. This drains PROFILE_ROWS (20,000) rows with the relay's own claim and `mark_outbox_sent`
(batch 500, no broker) in a fresh database per variant and round, timing the claim and the settle:
- `today`: the schema as migrated;
- `hot_ff100`: no index that the settle's columns touch (the partial indexes dropped, unfinished
  rows found through a plain (key, id) index), fillfactor left at 100;
- `hot_ffNN`: the same with fillfactor PROFILE_FILLFACTOR (70), room on the page for the new version.
The variants are a measurement, not a schema: gauges, prune and the FAILED count would need other
paths before a migration could drop those indexes (docs/benchmarks.md, relay v3).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg

from genesis import db
from genesis.local.services import LocalPostgres
from relay.worker import CLAIM
from tests.benchmarks.harness import say
from tests.conftest import fresh_database
from tests.relay_harness import Pool, bulk_backlog

Conn: TypeAlias = "asyncpg.pool.PoolConnectionProxy[Any]"
ROWS = int(os.environ.get("PROFILE_ROWS", "20000"))
BATCH = int(os.environ.get("PROFILE_BATCH", "500"))
ROUNDS = int(os.environ.get("PROFILE_ROUNDS", "3"))
FILLFACTOR = int(os.environ.get("PROFILE_FILLFACTOR", "70"))
HOT = [
    "DROP INDEX idx_event_outbox_pending",
    "DROP INDEX idx_event_outbox_sent_at",
    "DROP INDEX idx_event_outbox_failed",
    "DROP INDEX idx_event_outbox_unfinished_key",
    "CREATE INDEX idx_event_outbox_key ON event_outbox (key, id)",
]
VARIANTS = {
    "today": [],
    "hot_ff100": HOT,
    f"hot_ff{FILLFACTOR}": [*HOT, f"ALTER TABLE event_outbox SET (fillfactor = {FILLFACTOR})"],
}


async def drain(admin_url: str, name: str, statements: list[str]) -> str:
    dsn = await fresh_database(admin_url, f"profile_settle_{name}", log=lambda line: None)
    pool = await db.create_pool(dsn, application_name="bench")
    try:
        return await measure(pool, statements)
    finally:
        await pool.close()


async def hot_updates(conn: Conn) -> int:
    # This backend's counts reach the statistics only when flushed (at most once a second, or forced).
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return int(await conn.fetchval("SELECT pg_stat_get_tuples_hot_updated('event_outbox'::regclass)"))


async def measure(pool: Pool, statements: list[str]) -> str:
    for statement in statements:  # before the rows: a fillfactor applies to pages written after it
        await pool.execute(statement)
    await bulk_backlog(pool, sessions=ROWS // 5, rounds=5)
    async with pool.acquire() as conn:  # one backend: its HOT count is this drain's
        # As bench_relay's make_pending: every row SENT, vacuumed, then PENDING again with its heads.
        await conn.execute("UPDATE event_outbox SET status = 'SENT', sent_at = now()")
        await conn.execute("DELETE FROM outbox_heads")
        await conn.execute("DELETE FROM outbox_new_rows")
        for table in ("outbox_heads", "outbox_new_rows", "event_outbox"):
            await conn.execute(f"VACUUM ANALYZE {table}")
        await conn.execute("UPDATE event_outbox SET status = 'PENDING', sent_at = NULL, attempts = 0")
        await conn.execute("INSERT INTO outbox_heads (key, head_id) SELECT key, min(id) FROM event_outbox GROUP BY key")
        hot_before = await hot_updates(conn)
        claim = settle = 0.0
        total = batches = 0
        started = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            records = await conn.fetch(CLAIM, BATCH, 30, False, 0)  # the relay's own claim query
            t1 = time.perf_counter()
            if not records:
                break
            ids = [r["id"] for r in records]
            total += await conn.fetchval("SELECT mark_outbox_sent($1, $2)", records[0]["claim_token"], ids)
            claim += t1 - t0
            settle += time.perf_counter() - t1
            batches += 1
        seconds = time.perf_counter() - started
        hot = await hot_updates(conn) - hot_before
    per = 1000 / max(batches, 1)
    return (
        f"{total / seconds:,.0f} rows/s; per batch claim {claim * per:.1f} ms, settle {settle * per:.1f} ms; "
        f"HOT updates {hot:,} of {total:,}"
    )


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="profile-settle-"))
    postgres = LocalPostgres(workdir / "pg")
    try:
        admin_url = postgres.start()
        for round_ in range(1, ROUNDS + 1):
            for name, statements in VARIANTS.items():
                load = ", ".join(f"{n:.2f}" for n in os.getloadavg())
                say(f"round {round_} {name:>10}: {await drain(admin_url, name, statements)} (load {load})")
    finally:
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
