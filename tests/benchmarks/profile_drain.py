"""Where one relay drain's time goes (issue 11, 8b): `python -m tests.benchmarks.profile_drain`.

The relay's own RelayWorker and publisher run in this process (no subprocess, no polling), draining
PROFILE_ROWS (20,000) PENDING rows at PROFILE_BATCH (500) on each broker of BENCH_BROKERS; each
stage of every batch is timed (claim, publish, settle, and the database round trips inside them),
and the CPU of this process (the relay), of the PostgreSQL server's processes and of the broker is
read from /proc before and after. The same run's plain-producer baseline is printed beside it.
PROFILE_LANES (e.g. "1,2,3"; default the relay's own) drains with each number of lanes in turn, every
round, so that what a lane buys is measured in one run. PROFILE_CPROFILE=1 adds a cProfile of one
drain (the relay's Python, top 25 by own time).
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from genesis import db
from genesis.local.services import LocalPostgres
from genesis.settings import Settings
from relay.idempotent import publisher_for
from relay.worker import LANES, RelayWorker
from tests.benchmarks.bench_relay import Broker, broker, make_pending, producer_only, settle, wait_drained
from tests.benchmarks.harness import say
from tests.conftest import fresh_database
from tests.relay_harness import Pool, Rig, bulk_backlog
from tests.topic import TopicConsumer

ROWS = int(os.environ.get("PROFILE_ROWS", "20000"))
BATCH = int(os.environ.get("PROFILE_BATCH", "500"))
ROUNDS = int(os.environ.get("PROFILE_ROUNDS", "2"))
LANE_COUNTS = [int(n) for n in os.environ.get("PROFILE_LANES", str(LANES)).split(",")]
BROKERS = os.environ.get("BENCH_BROKERS", "tansu,kafka")
TICK = os.sysconf("SC_CLK_TCK")

Spans = dict[str, list[tuple[float, float]]]


def cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICK


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def cpu_snapshot(postmaster: int, broker_pids: list[int]) -> dict[str, float]:
    """CPU seconds so far: this process, the PostgreSQL server (all its processes) and the broker."""
    pg_pids = [postmaster, *children(postmaster)]
    return {
        "relay": cpu(os.getpid()),
        "postgres": sum(cpu(p) for p in pg_pids),
        "broker": sum(cpu(p) + sum(cpu(c) for c in children(p)) for p in broker_pids),
    }


def timed(spans: Spans, name: str, fn: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            spans.setdefault(name, []).append((started, time.perf_counter()))

    return wrapper


class TimedPool:
    """The relay's pool, with every statement's round trip timed by its first words."""

    def __init__(self, pool: Pool, spans: Spans) -> None:
        self._pool, self._spans = pool, spans

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._pool, name)
        if name not in ("fetch", "fetchval", "fetchrow", "execute"):
            return attr

        async def call(query: str, *args: Any, **kwargs: Any) -> Any:
            label = "sql " + " ".join(query.split()[1:3])[:40]
            return await timed(self._spans, label, attr)(query, *args, **kwargs)

        return call


def summary(spans: Spans, wall: float) -> None:
    print(f"  {'stage':<44}{'count':>6}{'total ms':>10}{'p50 ms':>8}{'p90 ms':>8}{'of wall':>8}")
    for name, intervals in sorted(spans.items(), key=lambda kv: kv[0]):
        ms = [(e - s) * 1000 for s, e in intervals]
        p90 = statistics.quantiles(ms, n=10)[8] if len(ms) > 1 else ms[0]
        row = f"{len(ms):>6}{sum(ms):>10.0f}{statistics.median(ms):>8.1f}{p90:>8.1f}{sum(ms) / 1000 / wall:>8.2f}"
        print(f"  {name:<44}{row}")
    busy = sum(e - s for s, e in spans.get("publish", []))
    print(f"  wall {wall * 1000:.0f} ms, of it the producer busy {busy * 1000:.0f} ms")


async def profiled_drain(
    dsn: str, pool: Pool, rig: Rig, target: Broker, postmaster: int, profile: bool, lanes: int
) -> float:
    topic = f"profile-drain-{uuid.uuid4().hex[:8]}"
    await target.create_topic(topic)
    settings = Settings(
        database_url=dsn, kafka_bootstrap_servers=target.bootstrap, kafka_topic=topic,
        kafka_enable_idempotence=target.idempotent, relay_batch_size=BATCH, relay_lease=30,
    )  # fmt: skip
    relay_pool = await db.create_pool(dsn, application_name="genesis-relay", max_size=3)
    spans: Spans = {}
    publisher = publisher_for(settings, timeout=5)
    await publisher.start()
    try:
        worker = RelayWorker(
            TimedPool(relay_pool, spans),  # type: ignore[arg-type]
            publisher, batch_size=BATCH, poll_interval=5, max_retries=3, retry_base_delay=1, lease=30, lanes=lanes,
            topic=topic, source=settings.cloudevents_source,
        )  # fmt: skip
        worker._claim = timed(spans, "claim", worker._claim)  # type: ignore[method-assign]
        worker._settler.settle = timed(spans, "settle", worker._settler.settle)  # type: ignore[method-assign]
        publisher.publish = timed(spans, "publish (with the wait for its turn)", publisher.publish)  # type: ignore[method-assign]
        publisher._send_in_turn = timed(spans, "publish: send a partition's batches", publisher._send_in_turn)  # type: ignore[method-assign]
        publisher._chunks = timed(spans, "publish: build record batches", publisher._chunks)  # type: ignore[method-assign]
        await make_pending(rig, topic)
        await pool.execute("SELECT pg_stat_reset()")
        broker_pids = [p for p in children(os.getpid()) if p != postmaster]  # Tansu's, or the JVMs
        before = cpu_snapshot(postmaster, broker_pids)
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        sent = await worker.drain(asyncio.Event())
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - started
        after = cpu_snapshot(postmaster, broker_pids)
        await wait_drained(pool, within=5)
    finally:
        await publisher.stop()
        await relay_pool.close()
    stats: Any = await pool.fetchrow(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'event_outbox'"
    )
    heads: Any = await pool.fetchrow(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'outbox_heads'"
    )
    print(
        f"\n{target.name}, {lanes} lane(s): {sent} rows in {wall:.2f}s = {sent / wall:.0f} rows/s (batch {BATCH}); "
        f"load {os.getloadavg()}"
    )
    per_row = ", ".join(f"{k} {(after[k] - before[k]) / sent * 1e6:.1f}" for k in after)
    print(f"  CPU µs per row: {per_row}")
    print(
        "  CPU s over the drain: "
        + ", ".join(f"{k} {after[k] - before[k]:.2f} ({(after[k] - before[k]) / wall:.2f} core)" for k in after)
    )
    print(f"  event_outbox updates {stats['n_tup_upd']} (HOT {stats['n_tup_hot_upd']}); "
          f"outbox_heads updates {heads['n_tup_upd']} (HOT {heads['n_tup_hot_upd']})")  # fmt: skip
    summary(spans, wall)
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    await settle(pool)
    return sent / wall


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="profile-drain-"))
    postgres = LocalPostgres(workdir / "pg")
    admin = postgres.start()
    try:
        dsn = await fresh_database(admin, "genesis_profile_drain", log=say)
        postmaster = int((workdir / "pg" / "postmaster.pid").read_text().split()[0])
        pool = await db.create_pool(dsn, application_name="bench")
        if os.environ.get("PROFILE_SQL_SETTINGS"):  # e.g. "synchronous_commit=off": an experiment's database settings
            for setting in os.environ["PROFILE_SQL_SETTINGS"].split(","):
                name, value = setting.split("=")
                await pool.execute(f"ALTER DATABASE genesis_profile_drain SET {name} = '{value}'")
            await pool.expire_connections()
        rows = await bulk_backlog(pool, sessions=ROWS // 5, rounds=5)
        say(f"{rows} rows written")
        await settle(pool)
        for kind in [k.strip() for k in BROKERS.split(",") if k.strip()]:
            async with broker(kind, workdir) as target:
                rig = Rig(dsn, target.bootstrap, "bench", pool, TopicConsumer(target.bootstrap, "unused"), workdir)
                broker_pids = [p for p in children(os.getpid()) if p != postmaster]
                before = cpu_snapshot(postmaster, broker_pids)
                plain = await producer_only(rig, target)
                used = {k: v - before[k] for k, v in cpu_snapshot(postmaster, broker_pids).items()}
                per_row = ", ".join(f"{k} {v / rows * 1e6:.1f}" for k, v in used.items())
                print(f"\n== {target.name}: plain producer {plain:.0f} msg/s (CPU µs per row: {per_row}; this "
                      f"process also read the rows); load {os.getloadavg()}")  # fmt: skip
                rates: dict[int, list[float]] = {lanes: [] for lanes in LANE_COUNTS}
                for n in range(ROUNDS):
                    for lanes in LANE_COUNTS:  # in turns: the load of the moment weighs on each alike
                        profile = n == 0 and os.environ.get("PROFILE_CPROFILE") == "1"
                        rate = await profiled_drain(dsn, pool, rig, target, postmaster, profile, lanes)
                        rates[lanes].append(rate)
                        print(f"  ratio to the producer: {rate / plain:.2f}")
                for lanes, found in rates.items():
                    median = statistics.median(found)
                    print(f"{target.name}, {lanes} lane(s): median {median:.0f} rows/s "
                          f"({median / plain:.2f} of the producer) over {len(found)} drains")  # fmt: skip
                await rig.consumer.stop()
        await pool.close()
    finally:
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
