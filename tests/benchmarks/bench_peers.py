"""`make bench-peers`: our command rate beside the closest peer's, on the same PostgreSQL in one run.

The peer is procrastinate (`defer_async`: one INSERT and a NOTIFY per job, through its plpgsql
function), installed by the Makefile in a virtualenv of its own (PEERS_PYTHON) and driven by
tests/benchmarks/peer_procrastinate.py with 8 producers (`BENCH_PEER_PRODUCERS`), once before and
once after our HTTP (64 clients, `BENCH_PEER_HTTP_CLIENTS`: where group commit's batches form) and raw
submit_command figures, so drift of a shared machine shows.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

from tests.benchmarks import bench_api
from tests.benchmarks.harness import api_stack, say
from tests.conftest import drop_database, on_server, with_database

PRODUCERS = int(os.environ.get("BENCH_PEER_PRODUCERS", "8"))
PEERS_PYTHON = os.environ.get("PEERS_PYTHON", "")
HTTP_CLIENTS = int(os.environ.get("BENCH_PEER_HTTP_CLIENTS", "64"))


def procrastinate_rate(admin_dsn: str, name: str) -> dict[str, float]:
    asyncio.run(on_server(admin_dsn, drop_database(name), f'CREATE DATABASE "{name}"'))
    say(f"procrastinate defer_async: {PRODUCERS} producers for {bench_api.SECONDS:g}s …")
    out = subprocess.run(
        [PEERS_PYTHON, "tests/benchmarks/peer_procrastinate.py", with_database(admin_dsn, name), str(PRODUCERS),
         str(bench_api.SECONDS)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout)
    result["load"] = os.getloadavg()[0]
    return result


def main() -> None:
    if not PEERS_PYTHON:
        raise SystemExit("PEERS_PYTHON is not set: run `make bench-peers`")
    bench_api.HTTP_CLIENTS[:] = [HTTP_CLIENTS]
    with api_stack("peers") as stack:
        admin = with_database(stack.dsn, "postgres")
        before = procrastinate_rate(admin, "genesis_bench_procrastinate")
        http, raw, _ = bench_api.measure(stack)
        after = procrastinate_rate(admin, "genesis_bench_procrastinate")
    print(f"{'path':<38}{'per second':>12}{'p50 ms':>9}{'p99 ms':>9}{'load':>7}")
    for name, r in (("procrastinate defer_async (before)", before), ("procrastinate defer_async (after)", after)):
        print(f"{name:<38}{r['per_second']:>12.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['load']:>7.1f}")
    ours = http[HTTP_CLIENTS]
    for name, r in ((f"HTTP commands, {HTTP_CLIENTS} clients", ours), ("raw submit_command", raw)):
        print(f"{name:<38}{r['per_second']:>12.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['load']:>7.1f}")
    peer = (before["per_second"] + after["per_second"]) / 2
    print(f"HTTP / procrastinate (mean of its two runs) = {ours['per_second'] / peer:.2f}   (goal ≥ 1, aim 1.2)")
    print(f"HTTP / raw single submit_command = {ours['per_second'] / raw['per_second']:.2f}")


if __name__ == "__main__":
    main()
