"""What the relay tests drive: `genesis relay` replicas as subprocesses, a consumer of the topic
(tests/topic.py), and the command path as psql drives it (network faults: tests/relay_proxy.py).
All of it runs in the test's event loop, so tests must not block it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias, get_args

import aiohttp
import asyncpg

from genesis import db
from genesis.commands import Stage
from genesis.local.services import free_port
from tests.processes import ServiceProcess, genesis_command
from tests.topic import TopicConsumer, create_topic

STAGES: tuple[str, ...] = tuple(s for s in get_args(Stage) if s != "FINISHED")  # the five a session confirms
USER = "relay-tester"
# Fast enough for tests, slow enough not to spin on a loaded 2-core machine.
TEST_RELAY_SETTINGS = {
    "RELAY_POLL_INTERVAL": "1",
    "RELAY_BATCH_SIZE": "100",
    "RELAY_LEASE": "5",
    "RELAY_RETRY_BASE_DELAY": "0.2",
    "RELAY_PUBLISH_TIMEOUT": "2",
    "RELAY_SWEEP_INTERVAL": "600",
    "LOG_LEVEL": "INFO",
}


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(every)


# --- relay replicas -----------------------------------------------------------------------------


class Relay(ServiceProcess):
    """One `genesis relay` subprocess; its JSON log lines go to `log_path`."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        super().__init__((genesis_command(), "relay"), env, log_path)
        self.metrics_port = int(env["RELAY_METRICS_PORT"])

    async def http(self, path: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(f"http://127.0.0.1:{self.metrics_port}{path}") as response,
        ):
            return response.status, await response.text()

    async def readyz(self) -> int:
        try:
            status, _ = await self.http("/readyz")
        except aiohttp.ClientError:
            return 0
        return status

    async def wait_ready(self, within: float = 30) -> Relay:
        async def ready() -> bool:
            assert self.process is not None
            assert self.process.returncode is None, self.failure()
            return await self.readyz() == 200

        await eventually(ready, within=within, what=f"relay {self.pid} ready", every=0.1)
        return self

    async def wait_unready(self, why: str, within: float = 10) -> None:
        async def unready() -> bool:
            return await self.readyz() == 503

        await eventually(unready, within=within, what=f"readiness fails {why}")

    async def metric(self, name: str) -> float:
        _, text = await self.http("/metrics")
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no metric {name}")

    async def terminate(self, within: float = 15) -> tuple[int, float]:
        """SIGTERM; returns the exit code and how long the relay took to exit."""
        return await self.stop(within)

    def logs(self) -> list[dict[str, Any]]:
        lines = super().logs()
        for line in lines:
            line["at"] = datetime.fromisoformat(line["ts"]).timestamp()
        return lines

    def failure(self) -> str:
        code = self.process.returncode if self.process else None
        return f"relay exited with {code}; log tail:\n{self.log_path.read_text(errors='replace')[-3000:]}"


@dataclass
class Rig:
    """One test's relay world: a topic of its own, a writer pool, a consumer and the replicas."""

    database_url: str
    bootstrap: str
    topic: str
    pool: asyncpg.Pool[Any]
    consumer: TopicConsumer
    workdir: Path
    relays: list[Relay] = field(default_factory=list)

    def env(self, **settings: object) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "KAFKA_", "DATABASE_URL"))}
        env.pop("LISTEN_DATABASE_URL", None)
        env.update(TEST_RELAY_SETTINGS)
        env.update(
            DATABASE_URL=self.database_url,
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            KAFKA_TOPIC=self.topic,
            RELAY_METRICS_PORT=str(free_port()),
            API_HOST="127.0.0.1",
        )
        env.update({k: str(v) for k, v in settings.items()})
        return env

    async def start_relay(self, *, ready: bool = True, **settings: object) -> Relay:
        relay = Relay(self.env(**settings), self.workdir / f"relay-{len(self.relays)}.log")
        self.relays.append(relay)
        await relay.start()
        return await relay.wait_ready() if ready else relay

    async def cli(self, *args: str) -> tuple[int, str, str]:
        """`genesis ARGS…` as an operator runs it; returns (exit code, stdout, stderr)."""
        process = await asyncio.create_subprocess_exec(
            genesis_command(), *args, env=self.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def open_rig(
    database_url: str, bootstrap: str, workdir: Path, *, partitions: int = 3, topic: str | None = None
) -> AsyncIterator[Rig]:
    """A rig on a new topic of `partitions`, or on `topic` when the test created it itself."""
    if topic is None:
        topic = f"relay-test-{uuid.uuid4().hex[:10]}"
        await create_topic(bootstrap, topic, partitions)
    # Events written through this pool land on the test's topic (submit_command reads the setting).
    pool = await db.create_pool(database_url, application_name="relay-test", max_size=10)
    consumer = TopicConsumer(bootstrap, topic)
    try:
        await consumer.start()
        rig = Rig(database_url, bootstrap, topic, pool, consumer, workdir)
        try:
            yield rig
        finally:
            await asyncio.gather(*(r.close() for r in rig.relays))
    finally:
        await consumer.stop()
        await pool.close()


# --- the command path, as psql would drive it ----------------------------------------------------

Pool: TypeAlias = "asyncpg.Pool[Any]"
Queryable: TypeAlias = "asyncpg.Pool[Any] | asyncpg.Connection[Any]"  # what psql-like helpers accept


async def new_session(pool: Queryable, user: str = USER) -> str:
    session = await pool.fetchval("SELECT create_session($1)", user)
    return str(session["id"])


async def submit(pool: Queryable, session_id: str, command_type: str, payload: dict[str, Any], user: str = USER) -> str:
    row = await pool.fetchrow(
        "SELECT * FROM submit_command($1, $2, $3, $4)", uuid.UUID(session_id), command_type, payload, user
    )
    assert row is not None
    return str(row["command_id"])


async def complete(pool: Queryable, command_id: str, outcome: str = "COMPLETED") -> None:
    await pool.execute("SELECT * FROM complete_command($1, $2, $3)", uuid.UUID(command_id), outcome, {"ok": True})


async def whole_story(pool: Pool, user: str = USER, *, pause: float = 0.0) -> str:
    """A session through every kind of command: 11 events, each its own transaction."""
    session_id = await new_session(pool, user)
    await complete(pool, await submit(pool, session_id, "RequestConceptGeneration", {"count": 2}, user))
    await asyncio.sleep(pause)
    await complete(pool, await submit(pool, session_id, "SubmitFeedback", {"feedback": "darker"}, user), "FAILED")
    for stage in STAGES:
        await asyncio.sleep(pause)
        await submit(pool, session_id, "ConfirmStage", {"stage": stage, "data": {"note": stage}}, user)
    return session_id


async def events_by_session(pool: Pool) -> dict[str, list[str]]:
    """Every committed event id, per session, in aggregate_version order."""
    rows = await pool.fetch(
        """SELECT aggregate_id::text AS s, event_id::text AS e FROM domain_events
            ORDER BY aggregate_id, aggregate_version"""
    )
    order: dict[str, list[str]] = {}
    for r in rows:
        order.setdefault(r["s"], []).append(r["e"])
    return order


async def outbox_status(pool: Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT status, count(*)::int AS n FROM event_outbox GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


async def outbox_stats(pool: Queryable) -> dict[str, Any]:
    row = await pool.fetchrow("SELECT * FROM outbox_stats()")
    assert row is not None
    return dict(row)


async def claimed(pool: Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox_leases"))


async def unsend(pool: Queryable) -> None:
    """Every row PENDING again, as if a relay had died after the broker acknowledged them but
    before it marked them SENT; queued for admission as the insert trigger queues a new row."""
    await pool.execute("UPDATE event_outbox SET status = 'PENDING', sent_at = NULL")
    await pool.execute("INSERT INTO outbox_new_rows (outbox_id, key) SELECT id, key FROM event_outbox")
    await pool.execute("SELECT pg_notify('genesis_outbox_v1', '')")


async def all_sent(pool: Queryable) -> bool:
    return bool(await pool.fetchval("SELECT NOT EXISTS (SELECT 1 FROM event_outbox WHERE status <> 'SENT')"))


BACKLOG_STEPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("RequestConceptGeneration", {"count": 1}),
    ("ConfirmStage", {"stage": "CONCEPT_SELECTION"}),
    ("SubmitFeedback", {"feedback": "more"}),
    ("ConfirmStage", {"stage": "STORY_CONCEPTION"}),
)


async def bulk_backlog(pool: Pool, sessions: int, rounds: int = 5, user: str = USER) -> int:
    """`sessions` new sessions with `rounds` (1-5) events each, through the SQL functions but one
    statement per round, so the sessions' rows interleave. Returns how many outbox rows it added."""
    ids = [
        r["id"]
        for r in await pool.fetch(
            "SELECT (create_session($1) ->> 'id')::uuid AS id FROM generate_series(1, $2)", user, sessions
        )
    ]
    for command_type, payload in BACKLOG_STEPS[: rounds - 1]:
        await pool.execute(
            "SELECT count(*) FROM unnest($4::uuid[]) s, submit_command(s, $1, $2, $3)", command_type, payload, user, ids
        )
    return sessions * rounds
