"""The write path's SQL before and after, in turns on one server: `python -m tests.benchmarks.ab_write [REF]`.

Database A gets the migrations and functions of git REF (default `main`), database B this tree's (`genesis
migrate`); then, in rounds (`BENCH_AB_ROUNDS`, 3), the raw submit_command load (tests/benchmarks/loadgen.py,
16 connections, fresh sessions) and the pgbench pair (create_session + submit_command) on A, then on B.
Taking turns puts both under the same neighbours, which on a shared machine move either alone by ±50 %;
the backends' CPU per command moves least of all.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg

from tests.benchmarks import bench_api, pgbench
from tests.benchmarks.harness import api_stack, say
from tests.conftest import drop_database, on_server, with_database

ROUNDS = int(os.environ.get("BENCH_AB_ROUNDS", "3"))


def checkout_sql(ref: str) -> Path:
    """sql/ of git `ref`, in a directory of its own."""
    root = Path(tempfile.mkdtemp(prefix="ab-write-"))
    archive = subprocess.run(["git", "archive", ref, "sql"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


async def install_ref(admin: str, name: str, root: Path) -> str:
    """Database `name` with the schema and functions under `root`/sql, applied file by file in order."""
    await on_server(admin, drop_database(name), f'CREATE DATABASE "{name}"')
    dsn = with_database(admin, name)
    conn = await asyncpg.connect(dsn)
    try:
        for path in sorted((root / "sql/migrations").glob("*.sql")) + sorted((root / "sql/functions").glob("*.sql")):
            await conn.execute(path.read_text())
    finally:
        await conn.close()
    return dsn


def main() -> None:
    ref = sys.argv[1] if len(sys.argv) > 1 else "main"
    figures: dict[str, list[tuple[float, float, float]]] = {ref: [], "this tree": []}
    with api_stack("ab") as stack:
        old = asyncio.run(install_ref(with_database(stack.dsn, "postgres"), "genesis_bench_ab_ref", checkout_sql(ref)))
        dsns = {ref: old,
                "this tree": stack.dsn}  # fmt: skip
        for dsn in dsns.values():
            asyncio.run(pgbench.prepare(dsn))
        for round_ in range(ROUNDS):
            for name, dsn in dsns.items():
                say(f"round {round_ + 1}, {name} …")
                ids = asyncio.run(bench_api.sessions(dsn, bench_api.SESSIONS))
                raw = bench_api.load("sql", dsn, ids, stack.env, stack.workdir)
                pair = pgbench.run(dsn, "create_session + submit_command", bench_api.CONCURRENCY, bench_api.SECONDS)
                figures[name].append((raw["per_second"], raw["backend_cpu_us"], pair))
                say(f"  raw {raw['per_second']:.0f}/s, {raw['backend_cpu_us']:.0f} µs CPU, pgbench pair {pair:.0f}/s, "
                    f"load {raw['load']:.1f}")  # fmt: skip
    print(f"{'SQL of':<12}{'raw cmd/s by round':>26}{'backend CPU µs/cmd':>26}{'pgbench pairs/s':>24}")
    for name, rows in figures.items():
        cols = [" ".join(f"{r[i]:.0f}" for r in rows) for i in range(3)]
        print(f"{name:<12}{cols[0]:>26}{cols[1]:>26}{cols[2]:>24}")
    a, b = figures[ref], figures["this tree"]
    for i, what in enumerate(("raw cmd/s", "backend CPU µs/cmd", "pgbench pairs/s")):
        ratios = [y[i] / x[i] for x, y in zip(a, b, strict=True)]
        print(f"this tree / {ref}, {what}: {statistics.median(ratios):.2f} (median of the rounds' ratios)")


if __name__ == "__main__":
    main()
