"""`make bench-relay`: how fast `genesis relay` drains the outbox, and how long an event takes from
its commit to a consumer of the topic.

1. Drain: BENCH_ROWS (50,000) PENDING rows, written through the SQL functions in bulk, drained by 1
   and 2 replicas at RELAY_BATCH_SIZE 100 and 500 → events/s (from the commit that makes them
   PENDING to the last one SENT; a consumer checks the topic holds them all). Two baselines from
   the same run: a plain aiokafka producer sending the same rows with no database, and the claim +
   mark_outbox_sent loop with no broker; the relay's figure is printed as a ratio of each.
2. Latency: ConfirmStage commands committed at BENCH_RATE (200) per second for BENCH_SECONDS (20),
   commit → consumer receipt, p50/p99; with LISTEN/NOTIFY, then polling only (RELAY_LISTEN=false,
   RELAY_POLL_INTERVAL=BENCH_POLL_INTERVAL, the contract's 5 s by default).

Both run against each broker of BENCH_BROKERS, in one run (default `tansu,kafka`; `kafka3` is a
three-node Apache Kafka cluster, topics with replication factor 3): the local Tansu broker, and Apache
Kafka 3.7.0 from Maven Central (genesis.local.kafka) with the idempotent producer on, as
KAFKA_ENABLE_IDEMPOTENCE=auto chooses. KAFKA_BOOTSTRAP_SERVERS, when set, is the only broker.
PostgreSQL is DATABASE_URL's server when set, else an embedded one. Everything runs on this machine,
so the figures include the broker, PostgreSQL and the load generator sharing its cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from genesis import db
from genesis.local.kafka import KafkaCluster
from genesis.local.kafka_jars import KAFKA_VERSION, unavailable
from genesis.local.services import LocalBroker, LocalPostgres
from relay.brokerinfo import grants_producer_ids
from relay.publisher import MAX_BATCH_SIZE, MAX_REQUEST_SIZE, headers_from_json
from relay.worker import CLAIM
from tests.benchmarks.harness import say
from tests.benchmarks.relay_scenarios import claim_latency, latency_while_retrying
from tests.conftest import fresh_database
from tests.relay_harness import STAGES, Pool, Rig, bulk_backlog, outbox_status
from tests.topic import TopicConsumer, create_topic

ROWS = int(os.environ.get("BENCH_ROWS", "50000"))
RATE = float(os.environ.get("BENCH_RATE", "200"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
POLL_INTERVAL = float(os.environ.get("BENCH_POLL_INTERVAL", "5"))
BROKERS = os.environ.get("BENCH_BROKERS", "tansu,kafka")
PARTITIONS = 6
STARTUP_PAUSE = 1.0  # seconds between a relay's readiness and the drain it is timed on
# Production settings, not the tests' fast ones.
RELAY: dict[str, Any] = {
    "RELAY_POLL_INTERVAL": 5,
    "RELAY_LEASE": 30,
    "RELAY_PUBLISH_TIMEOUT": 5,
    "LOG_LEVEL": "WARNING",
}


@contextlib.asynccontextmanager
async def database(workdir: Path) -> AsyncIterator[str]:
    postgres = None
    admin_url = os.environ.get("DATABASE_URL")
    try:
        if not admin_url:
            say("starting an embedded PostgreSQL …")
            postgres = LocalPostgres(workdir / "pg")
            admin_url = postgres.start()
        yield await fresh_database(admin_url, "genesis_bench_relay", log=say)
    finally:
        if postgres is not None:
            postgres.stop()


@dataclass
class Broker:
    name: str
    bootstrap: str
    startup: float  # seconds from launch to answering metadata
    idempotent: bool  # what the relay's KAFKA_ENABLE_IDEMPOTENCE=auto chooses against it
    cluster: KafkaCluster | None = None

    async def create_topic(self, topic: str) -> None:
        if self.cluster is not None:  # replication factor 3 on three nodes; leaders elected first
            await self.cluster.create_topic(topic, PARTITIONS)
        else:
            await create_topic(self.bootstrap, topic, PARTITIONS)


@contextlib.asynccontextmanager
async def broker(kind: str, workdir: Path) -> AsyncIterator[Broker]:
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield Broker(given, given, 0.0, await grants_producer_ids(given, request_timeout=10))
        return
    started = time.perf_counter()
    if kind == "tansu":
        say("starting the local Tansu broker …")
        tansu = LocalBroker(log_path=workdir / "broker.log")
        try:
            bootstrap = tansu.start()
            yield Broker("Tansu 0.6", bootstrap, time.perf_counter() - started, False)
        finally:
            tansu.stop()
        return
    nodes = {"kafka": 1, "kafka3": 3}[kind]
    say(f"starting Apache Kafka {KAFKA_VERSION}, {nodes} node(s) …")
    with KafkaCluster(workdir / kind, nodes, log=say) as cluster:
        assert cluster.startup_seconds is not None
        name = f"Apache Kafka {KAFKA_VERSION}, {nodes} node(s)"
        yield Broker(name, cluster.bootstrap_servers, cluster.startup_seconds, True, cluster)


async def check_on_topic(bootstrap: str, topic: str, event_ids: set[str]) -> None:
    """Every event is on the topic, as a consumer reading it from the start finds it."""
    consumer = TopicConsumer(bootstrap, topic)
    await consumer.start()
    try:
        await consumer.wait_for(event_ids, within=60)  # its failure says how many, and any hole given up
    finally:
        await consumer.stop()


async def pending(pool: Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM event_outbox WHERE status = 'PENDING'"))


async def any_pending(pool: Pool) -> bool:
    # Stops at the first PENDING row: polling with count(*) (20 ms of PostgreSQL CPU per call at
    # 50k PENDING rows, every 20 ms) took a third of a core from the relay it was timing.
    return bool(await pool.fetchval("SELECT EXISTS (SELECT FROM event_outbox WHERE status = 'PENDING')"))


async def wait_drained(pool: Pool, within: float) -> None:
    deadline = time.monotonic() + within
    while await any_pending(pool):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still {await pending(pool)} PENDING after {within}s")
        await asyncio.sleep(0.02)


async def make_pending(rig: Rig, topic: str) -> None:
    """Every row PENDING again, for `topic`, in one commit with one NOTIFY (as a burst of commands)."""
    async with rig.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE event_outbox SET status = 'PENDING', sent_at = NULL, attempts = 0, topic = $1",
            topic,
        )
        # Written past the outbox functions, so their heads are too (what the trigger and the
        # settling functions keep): every session is claimable from its first row.
        await conn.execute(
            """INSERT INTO outbox_heads (key, head_id) SELECT key, min(id) FROM event_outbox GROUP BY key
               ON CONFLICT (key) DO UPDATE SET head_id = EXCLUDED.head_id, blocked = false, retry = false,
                                               due_at = now(), claim_token = NULL,
                                               held_from = NULL, held_to = NULL"""
        )
        await conn.execute("SELECT pg_notify('genesis_outbox_v1', '')")


async def settle(pool: Pool) -> None:
    await pool.execute("UPDATE event_outbox SET status = 'SENT', sent_at = now()")
    await pool.execute("DELETE FROM outbox_heads")
    await pool.execute("DELETE FROM outbox_new_rows")  # make_pending writes the heads itself
    for table in ("outbox_heads", "outbox_new_rows", "event_outbox"):
        await pool.execute(f"VACUUM ANALYZE {table}")


async def drain(rig: Rig, target: Broker, rows: int, replicas: int, batch: int) -> float:
    """Events/s for `replicas` relays draining `rows` rows made PENDING in one commit."""
    topic = f"bench-drain-{uuid.uuid4().hex[:8]}"
    await target.create_topic(topic)
    relays = [await rig.start_relay(**RELAY, KAFKA_TOPIC=topic, RELAY_BATCH_SIZE=batch) for _ in range(replicas)]
    try:
        # A running relay, not one starting: its start-up work (first sweep, first outbox gauges, the
        # first plans of its statements on new connections) cost a 20,000-row drain on Apache Kafka
        # 13,700–16,600 events/s against 18,000–20,000 after this pause (docs/benchmarks.md).
        await asyncio.sleep(STARTUP_PAUSE)
        await make_pending(rig, topic)
        started = time.perf_counter()
        await wait_drained(rig.pool, within=600)
        seconds = time.perf_counter() - started
    finally:
        await asyncio.gather(*(r.close() for r in relays))
    status = await outbox_status(rig.pool)
    assert status == {"SENT": rows}, f"drained, but not all SENT: {status}"
    event_ids = {str(r["event_id"]) for r in await rig.pool.fetch("SELECT event_id FROM event_outbox")}
    await check_on_topic(rig.bootstrap, topic, event_ids)
    await rig.pool.execute("VACUUM ANALYZE event_outbox")
    return rows / seconds


async def database_only(rig: Rig, batch: int) -> float:
    """Baseline: rows/s of the relay's claim and mark_outbox_sent alone, one batch after another,
    publishing nothing."""
    await make_pending(rig, "unused")
    started = time.perf_counter()
    total = 0
    while records := await rig.pool.fetch(CLAIM, batch, 30, False, 0):  # the relay's own claim query
        ids = [r["id"] for r in records]
        total += await rig.pool.fetchval("SELECT mark_outbox_sent($1, $2)", records[0]["claim_token"], ids)
    seconds = time.perf_counter() - started
    await settle(rig.pool)
    return total / seconds


async def producer_only(rig: Rig, target: Broker) -> float:
    """Baseline: messages/s of a plain aiokafka producer sending the same rows, one send() each,
    with the relay's producer settings (idempotence as the relay chooses) and no database in the loop."""
    topic = f"bench-producer-{uuid.uuid4().hex[:8]}"
    await target.create_topic(topic)
    records = await rig.pool.fetch("SELECT key, payload::text AS value, headers::text AS headers FROM event_outbox")
    messages = [(r["key"].encode(), r["value"].encode(), headers_from_json(r["headers"], "/bench")) for r in records]
    producer = AIOKafkaProducer(
        bootstrap_servers=rig.bootstrap, acks="all", enable_idempotence=target.idempotent, linger_ms=2,
        max_batch_size=MAX_BATCH_SIZE, max_request_size=MAX_REQUEST_SIZE,
    )  # fmt: skip
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, value, key=key, headers=headers) for key, value, headers in messages]
        await asyncio.gather(*futures)
        return len(messages) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def latency(rig: Rig, target: Broker, *, listen: bool) -> dict[str, float]:
    """Commit → consumer receipt of ConfirmStage events committed at RATE per second."""
    topic = f"bench-latency-{uuid.uuid4().hex[:8]}"
    await target.create_topic(topic)
    commands = int(RATE * SECONDS)
    pool = await db.create_pool(rig.database_url, application_name="bench", max_size=16)
    consumer = TopicConsumer(rig.bootstrap, topic)
    settings: dict[str, Any] = {**RELAY, "KAFKA_TOPIC": topic}
    if not listen:
        settings.update(RELAY_LISTEN="false", RELAY_POLL_INTERVAL=POLL_INTERVAL)
    before = await rig.pool.fetchval("SELECT coalesce(max(id), 0) FROM event_outbox")
    relay = await rig.start_relay(**settings)
    try:
        await consumer.start()
        count = commands // len(STAGES) + 1
        rows = await pool.fetch("SELECT create_session('bench') ->> 'id' AS id FROM generate_series(1, $1)", count)
        sessions = [uuid.UUID(r["id"]) for r in rows]
        await wait_drained(pool, within=60)  # their Created events are not measured
        committed: dict[str, float] = {}

        async def command(i: int) -> None:
            session, stage = sessions[i % count], STAGES[i // count]
            row = await pool.fetchrow(
                "SELECT event_ids FROM submit_command($1, 'ConfirmStage', $2, 'bench')", session, {"stage": stage}
            )
            assert row is not None
            now = time.time()
            committed.update((str(e), now) for e in row["event_ids"])

        started = time.perf_counter()
        tasks = []
        for i in range(commands):
            await asyncio.sleep(max(0.0, started + i / RATE - time.perf_counter()))
            tasks.append(asyncio.create_task(command(i)))
        await asyncio.gather(*tasks)
        achieved = commands / (time.perf_counter() - started)
        await consumer.wait_for(set(committed), within=POLL_INTERVAL + 60)
        received = {r.event_id: r.at for r in consumer.records}
        ms = sorted((received[e] - t) * 1000 for e, t in committed.items())
        cuts = statistics.quantiles(ms, n=100)
        return {"rate": achieved, "events": len(ms), "p50": cuts[49], "p99": cuts[98], "max": ms[-1]}
    finally:
        await relay.close()
        await consumer.stop()
        await pool.close()
        # Its rows go (SENT, as the sweeper prunes them): the next broker's drains move the same ROWS.
        await rig.pool.execute("DELETE FROM event_outbox WHERE id > $1", before)
        await rig.pool.execute("VACUUM ANALYZE event_outbox")


@dataclass
class Figures:
    broker: Broker
    plain: float = 0.0
    drained: list[tuple[int, int, float]] = field(default_factory=list)
    timed: list[tuple[bool, dict[str, float]]] = field(default_factory=list)
    retrying: dict[str, Any] = field(default_factory=dict)


async def on_broker(pool: Pool, dsn: str, target: Broker, rows: int, workdir: Path) -> Figures:
    rig = Rig(dsn, target.bootstrap, "bench", pool, TopicConsumer(target.bootstrap, "unused"), workdir)
    figures = Figures(target)
    try:
        say(f"{target.name}: the broker alone …")
        figures.plain = await producer_only(rig, target)
        for replicas, batch in ((1, 100), (1, 500), (2, 100), (2, 500)):
            say(f"{target.name}: drain, {replicas} replica(s), batch {batch} …")
            figures.drained.append((replicas, batch, await drain(rig, target, rows, replicas, batch)))
        for listen in (True, False):
            say(f"{target.name}: latency at {RATE:g}/s for {SECONDS:g}s, {'NOTIFY' if listen else 'polling only'} …")
            figures.timed.append((listen, await latency(rig, target, listen=listen)))
        say(f"{target.name}: latency of other sessions while one row retries …")
        figures.retrying = await latency_while_retrying(rig, RELAY)
    finally:
        await rig.consumer.stop()  # never started; closed all the same
    return figures


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    kinds = [k.strip() for k in BROKERS.split(",") if k.strip()]
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        kinds = ["given"]
    elif "kafka" in kinds or "kafka3" in kinds:
        why = unavailable()
        if why:
            say(f"Apache Kafka skipped: {why}")
            kinds = [k for k in kinds if not k.startswith("kafka")]
    results: list[Figures] = []
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)  # the embedded PostgreSQL's files too
        dsn = await stack.enter_async_context(database(workdir))
        pool = await db.create_pool(dsn, application_name="bench")
        stack.push_async_callback(pool.close)
        say(f"writing {ROWS} outbox rows through the SQL functions …")
        started = time.perf_counter()
        rows = await bulk_backlog(pool, sessions=ROWS // 5, rounds=5)
        say(f"  {rows} rows in {time.perf_counter() - started:.1f}s")
        await settle(pool)
        rig = Rig(dsn, "", "bench", pool, TopicConsumer("127.0.0.1:9", "unused"), workdir)
        say("baseline: the database alone …")
        baselines = {batch: await database_only(rig, batch) for batch in (100, 500)}
        await rig.consumer.stop()  # never started; closed all the same
        for kind in kinds:
            async with broker(kind, workdir) as target:
                results.append(await on_broker(pool, dsn, target, rows, workdir))
        say("claim latency on a pathological outbox …")
        claims = await claim_latency(pool)  # last: it leaves the outbox pathological
    report(rows, baselines, results, claims)


def report(rows: int, baselines: dict[int, float], results: list[Figures], claims: dict[str, Any]) -> None:
    print(f"drain of {rows} PENDING rows; the database baseline, measured in this run:")
    for batch, per_second in baselines.items():
        print(f"  claim_outbox + mark_outbox_sent at batch {batch}, no broker: {per_second:.0f} rows/s")
    for f in results:
        idempotence = "idempotent producer on" if f.broker.idempotent else "idempotent producer off"
        print(f"\n== {f.broker.name}: started in {f.broker.startup:.1f}s; {idempotence} ==")
        print(f"  plain aiokafka producer, one send() per row, no database: {f.plain:.0f} messages/s")
        print(f"{'replicas':>9}{'batch':>7}{'events/s':>10}{'/producer':>11}{'/database':>11}")
        for replicas, batch, per_second in f.drained:
            ratios = f"{per_second / f.plain:>11.2f}{per_second / baselines[batch]:>11.2f}"
            print(f"{replicas:>9}{batch:>7}{per_second:>10.0f}{ratios}")
        print(f"commit → consumer latency, ConfirmStage at {RATE:g}/s for {SECONDS:g}s")
        print(f"{'wake-up':<28}{'commands/s':>11}{'events':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        for listen, r in f.timed:
            name = "LISTEN/NOTIFY" if listen else f"polling only ({POLL_INTERVAL:g} s)"
            figures = f"{r['rate']:>11.0f}{r['events']:>8.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}{r['max']:>9.1f}"
            print(f"{name:<28}{figures}")

        retrying = f.retrying
        print(f"while one row retries (1 s, 2 s, 4 s), other sessions: {retrying['events']:.0f} events,")
        p50, p99, top = retrying["p50"], retrying["p99"], retrying["max"]
        print(f"  commit → consumer p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {top:.1f} ms")
        print(f"  (the row was {'still' if retrying['still_retrying'] else 'no longer'} retrying at the last commit)")
    print(f"\nclaim_outbox(100), {claims['claimed']} rows claimed; the backlog in tests/benchmarks/relay_scenarios.py")
    print(f"  p50 {claims['p50']:.2f} ms, p99 {claims['p99']:.2f} ms, max {claims['max']:.2f} ms; plans:")
    for plan in claims["plans"]:
        print("  " + plan.replace("\n", "\n  "))


if __name__ == "__main__":
    asyncio.run(main())
