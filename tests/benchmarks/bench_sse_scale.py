"""The SSE scale case of `make bench-sse`: 10,000 open streams over 5,000 sessions, 200 events/s spread over them.

Each session has its own user and two streams (a user with two tabs). The streams are read by
tests/benchmarks/sse_scale_reader.py in a process of its own; writers commit SubmitFeedback + complete_command
rounds (two events each) on random sessions at a steady total rate. Printed: commit → receipt p50 / p99 / max,
and the API's RSS per open stream (VmRSS with every stream open and idle, minus VmRSS before, over the streams).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from tests.benchmarks.harness import Stack, say

SESSIONS = int(os.environ.get("BENCH_SCALE_SESSIONS", "5000"))
PER_SESSION = int(os.environ.get("BENCH_SCALE_STREAMS_PER_SESSION", "2"))
EVENTS_PER_SECOND = float(os.environ.get("BENCH_SCALE_EVENTS_PER_SECOND", "200"))
SECONDS = float(os.environ.get("BENCH_SCALE_SECONDS", "20"))
WRITERS = 4

SUBMIT = "SELECT command_id FROM submit_command($1, 'SubmitFeedback', jsonb_build_object('feedback', $2::text), $3)"
COMPLETE = "SELECT complete_command($1, 'COMPLETED', jsonb_build_object('t', $2::text))"


def raise_fd_limit() -> None:
    """10,000 streams are 10,000 sockets in the API and as many in the reader (both inherit this limit)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < SESSIONS * PER_SESSION + 1000:
        say(f"warning: RLIMIT_NOFILE hard limit {hard} is below what {SESSIONS * PER_SESSION} streams need")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def create_sessions(dsn: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT u, create_session(u) ->> 'id' AS id"
            " FROM (SELECT 'bench-' || g AS u FROM generate_series(1, $1) g) s",
            SESSIONS,
        )
        return [(r["u"], r["id"]) for r in rows]
    finally:
        await conn.close()


async def write(dsn: str, owners: list[tuple[str, str]], committed: dict[str, float]) -> int:
    """Commits events at EVENTS_PER_SECOND in all for SECONDS; returns how many. `committed` gets each event's
    stamp → time.time() when its commit returned."""
    interval = 2 * WRITERS / EVENTS_PER_SECOND  # each writer's time per round of two events
    deadline = time.monotonic() + SECONDS

    async def writer(mine: list[tuple[str, str]]) -> int:
        # Each writer has sessions of its own: a session's SubmitFeedback is completed before its next one.
        conn = await asyncpg.connect(dsn)
        rounds = 0
        try:
            next_at = time.monotonic()
            while time.monotonic() < deadline:
                user, session_id = random.choice(mine)
                stamp = repr(time.time())
                command_id = await conn.fetchval(SUBMIT, session_id, stamp, user)
                committed[stamp] = time.time()
                stamp = repr(time.time())
                await conn.execute(COMPLETE, command_id, stamp)
                committed[stamp] = time.time()
                rounds += 1
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            await conn.close()
        return rounds

    return 2 * sum(await asyncio.gather(*(writer(owners[n::WRITERS]) for n in range(WRITERS))))


def measure_scale(stack: Stack) -> dict[str, Any]:
    owners = asyncio.run(create_sessions(stack.dsn))
    before = rss_kib(stack.api_pid)
    say(f"{SESSIONS * PER_SESSION:,} streams over {SESSIONS:,} sessions, {EVENTS_PER_SECOND:g} events/s for "
        f"{SECONDS:g} s; load average {os.getloadavg()[0]:.2f} …")  # fmt: skip
    reader = subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks.sse_scale_reader", stack.base_url, str(PER_SESSION)],
        env=stack.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert reader.stdin is not None
    assert reader.stdout is not None
    opened = time.monotonic()
    reader.stdin.write(";".join(f"{u} {s}" for u, s in owners) + "\n")
    reader.stdin.flush()
    assert reader.stdout.readline().strip() == "ready"
    open_seconds = time.monotonic() - opened
    time.sleep(3)  # idle: what every open stream holds, nothing in flight
    idle = rss_kib(stack.api_pid)
    load_before = os.getloadavg()[0]
    committed: dict[str, float] = {}
    events = asyncio.run(write(stack.dsn, owners, committed))
    reader.stdin.write(f"{events * PER_SESSION}\n")
    reader.stdin.flush()
    result: dict[str, Any] = json.loads(reader.stdout.readline())
    reader.wait(60)
    streams = SESSIONS * PER_SESSION
    from_commit = sorted(t - committed[stamp] for stamp, t in result.pop("receipts") if stamp in committed)
    n = len(from_commit)
    result |= {
        "commit_p50_ms": 1000 * from_commit[n // 2] if n else 0.0,
        "commit_p99_ms": 1000 * from_commit[min(n - 1, int(n * 0.99))] if n else 0.0,
        "commit_max_ms": 1000 * from_commit[-1] if n else 0.0,
        "events": events,
        "open_seconds": open_seconds,
        "rss_before_mib": before / 1024,
        "rss_idle_mib": idle / 1024,
        "kib_per_stream": (idle - before) / streams,
        "load": (load_before, os.getloadavg()[0]),
    }
    return result


def report_scale(r: dict[str, Any]) -> None:
    print(
        f"scale: {r['streams']:,} streams over {SESSIONS:,} sessions, {r['events']:,} events in {SECONDS:g} s "
        f"→ {r['deliveries']:,} of {r['expected']:,} deliveries; commit returned → receipt p50 "
        f"{r['commit_p50_ms']:.1f} ms, p99 {r['commit_p99_ms']:.1f} ms, max {r['commit_max_ms']:.1f} ms; "
        f"statement start → receipt p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms; "
        f"streams opened in {r['open_seconds']:.1f} s; API RSS {r['rss_before_mib']:.0f} → "
        f"{r['rss_idle_mib']:.0f} MiB = {r['kib_per_stream']:.1f} KiB per idle stream; "
        f"load average {r['load'][0]:.2f} → {r['load'][1]:.2f} on {os.cpu_count()} cores"
    )
