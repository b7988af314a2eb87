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
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

from genesis.localservices import free_port, wait_for_port
from tests.benchmarks.harness import USER, another_api, api_stack, say

CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "16"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
SESSIONS = int(os.environ.get("BENCH_SESSIONS", "8000"))
ROUNDS = int(os.environ.get("BENCH_TRACING_ROUNDS", "3"))  # tracing off / on turns


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


@contextlib.contextmanager
def otlp_sink() -> Iterator[tuple[str, dict[str, Any]]]:
    """A local OTLP/HTTP receiver (tests/benchmarks/otlp_sink.py); its counts land in the dict at exit."""
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-m", "tests.benchmarks.otlp_sink", str(port)], stdout=subprocess.PIPE)
    counts: dict[str, Any] = {}
    try:
        wait_for_port(port, process=sink)
        yield f"http://127.0.0.1:{port}", counts
    finally:
        sink.send_signal(signal.SIGTERM)
        out, _ = sink.communicate(timeout=30)
        counts.update(json.loads(out or b"{}"))


def _rate(result: dict[str, Any]) -> float:
    return float(result["per_second"])


def main() -> None:
    with api_stack("api") as stack:
        say(f"creating {(2 + 2 * ROUNDS) * SESSIONS} sessions …")
        http_sessions, sql_sessions = (asyncio.run(sessions(stack.dsn, SESSIONS)) for _ in range(2))
        http = load("http", stack.base_url, http_sessions, stack.env, stack.workdir)
        sql = load("sql", stack.dsn, sql_sessions, stack.env, stack.workdir)
        # Tracing off against on, each in a `genesis api` of its own on the same database, taking turns so
        # that a neighbour's load lands on both alike.
        offs: list[dict[str, Any]] = []
        ons: list[dict[str, Any]] = []
        exported: dict[str, Any] = {}
        for _ in range(ROUNDS):
            with another_api(stack) as off_url:
                offs.append(load("http", off_url, asyncio.run(sessions(stack.dsn, SESSIONS)), stack.env, stack.workdir))
            fresh = asyncio.run(sessions(stack.dsn, SESSIONS))
            with otlp_sink() as (endpoint, counts), another_api(stack, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint) as url:
                ons.append(load("http", url, fresh, stack.env, stack.workdir))
            exported = counts
    off, on = max(offs, key=_rate), max(ons, key=_rate)
    ratio = http["per_second"] / sql["per_second"]
    print(f"{'path':<34}{'commands/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}  statuses")
    rows = (("HTTP (genesis api)", http), ("raw submit_command (asyncpg)", sql),
            ("HTTP, tracing off", off), ("HTTP, tracing on (OTLP/HTTP export)", on))  # fmt: skip
    for name, r in rows:
        figures = f"{r['per_second']:>12.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['requests']:>10}"
        print(f"{name:<34}{figures}  {r['statuses']}")
    print(f"ratio HTTP / raw = {ratio:.2f}   (concurrency {CONCURRENCY}, {SECONDS:g}s each, {os.cpu_count()} cores)")
    pairs = list(zip(offs, ons, strict=True))
    rounds = "  ".join(f"{_rate(a):.0f}/{_rate(b):.0f}" for a, b in pairs)
    # On a shared machine a neighbour's burst can halve one 10 s run: the median of the rounds' ratios and
    # the ratio of the best runs are both printed; neither alone settles much.
    print(
        f"ratio tracing on / off = {statistics.median(_rate(b) / _rate(a) for a, b in pairs):.2f} median of "
        f"{ROUNDS} rounds, {_rate(on) / _rate(off):.2f} best against best (goal ≥ 0.9)\n"
        f"off/on by round: {rounds}; the receiver got {exported.get('spans', '?')} spans in "
        f"{exported.get('requests', '?')} requests in the last round"
    )


if __name__ == "__main__":
    main()
