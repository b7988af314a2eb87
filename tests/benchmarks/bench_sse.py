"""`make bench-sse`: SSE fan-out latency, commit → received, with 500 open streams on one session, then the
scale case of bench_sse_scale.py (10,000 streams over 5,000 sessions; BENCH_SCALE=0 skips it).

The API runs as the real `genesis api`; the 500 streams are read by tests/benchmarks/sse_reader.py
in a process of its own. The writer commits SubmitFeedback + complete_command rounds over asyncpg
(two events a round) at a steady rate. The baseline, measured in the same run, is one stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import asyncpg

from tests.benchmarks.bench_sse_scale import measure_scale, raise_fd_limit, report_scale
from tests.benchmarks.harness import USER, api_stack, say

STREAMS = int(os.environ.get("BENCH_STREAMS", "500"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "50"))
RATE = float(os.environ.get("BENCH_ROUNDS_PER_SECOND", "10"))
SCALE = os.environ.get("BENCH_SCALE", "1") != "0"  # the 10,000-stream case (bench_sse_scale.py)


SUBMIT = "SELECT command_id FROM submit_command($1, 'SubmitFeedback', jsonb_build_object('feedback', $2::text), $3)"


async def write(dsn: str, session_id: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(ROUNDS):
            started = time.perf_counter()
            command_id = await conn.fetchval(SUBMIT, session_id, repr(time.time()), USER)
            await conn.execute(
                "SELECT complete_command($1, 'COMPLETED', jsonb_build_object('t', $2::text))",
                command_id,
                repr(time.time()),
            )
            await asyncio.sleep(max(0.0, 1 / RATE - (time.perf_counter() - started)))
    finally:
        await conn.close()


async def new_session(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SELECT create_session($1) ->> 'id'", USER))
    finally:
        await conn.close()


def measure(dsn: str, base_url: str, env: dict[str, str], streams: int) -> dict[str, Any]:
    session_id = asyncio.run(new_session(dsn))
    say(f"{streams} stream(s), {ROUNDS} rounds at {RATE:g}/s …")
    reader = subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks.sse_reader", base_url, session_id, str(streams), str(2 * ROUNDS)],
        env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert reader.stdout is not None
    assert reader.stdout.readline().strip() == "ready"
    asyncio.run(write(dsn, session_id))
    result: dict[str, Any] = json.loads(reader.stdout.readline())
    reader.wait(30)
    return result


def main() -> None:
    raise_fd_limit()
    # The one-session case is one user's STREAMS tabs: past the per-user cap, which is not what it measures.
    os.environ.setdefault("SSE_MAX_STREAMS_PER_USER", str(max(STREAMS, 16)))
    with api_stack("sse") as stack:
        one = measure(stack.dsn, stack.base_url, stack.env, 1)
        many = measure(stack.dsn, stack.base_url, stack.env, STREAMS)
    scale = None
    if SCALE:
        with api_stack("sse_scale") as stack:
            scale = measure_scale(stack)
    print(f"{'streams':>8}{'deliveries':>12}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for r in (one, many):
        print(f"{r['streams']:>8}{r['deliveries']:>12}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}")
    print(f"p99 ratio {STREAMS} streams / 1 stream = {many['p99_ms'] / one['p99_ms']:.1f}")
    if scale is not None:
        report_scale(scale)


if __name__ == "__main__":
    main()
