"""The tracing part of `make bench-api`: the same HTTP load against `genesis api` with tracing off (no
OTEL_* settings); on (every span exported over OTLP/HTTP to a local receiver, tests/benchmarks/otlp_sink.py);
on with the SQL CLIENT spans too; and on with a 10 % sampler: in turns, on the stack's database. Prints
commands/s and the API process's own CPU per command (from /proc): the first moves with whatever else the
machine runs, the second much less."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

from genesis.local.services import free_port, wait_for_port
from tests.benchmarks.harness import Stack, another_api, cpu_seconds

Load = Callable[[str, list[str]], dict[str, Any]]  # (API base URL, session ids) → loadgen figures
NewSessions = Callable[[], list[str]]

SAMPLED = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
# Each tracing mode against off: every span (the default: a SERVER span per request); with a CLIENT span per
# SQL call too (TRACE_SQL_SPANS); 10 % of traces.
MODES: dict[str, dict[str, str]] = {
    "on": {},
    "on, with SQL spans": {"TRACE_SQL_SPANS": "true"},
    "on, 10 % sampled": SAMPLED,
}


@contextlib.contextmanager
def otlp_sink() -> Iterator[tuple[str, dict[str, Any]]]:
    """A local OTLP/HTTP receiver; its counts (requests, spans) land in the dict when it stops."""
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-m", "tests.benchmarks.otlp_sink", str(port)], stdout=subprocess.PIPE)
    counts: dict[str, Any] = {}
    try:
        wait_for_port(port, process=sink)
        yield f"http://127.0.0.1:{port}", counts
    finally:
        sink.send_signal(signal.SIGTERM)
        out, _ = sink.communicate(timeout=60)
        counts.update(json.loads(out or b"{}"))


def _run(stack: Stack, load: Load, session_ids: list[str], **settings: str) -> dict[str, Any]:
    with another_api(stack, **settings) as (url, pid):
        before = cpu_seconds(pid)
        result = load(url, session_ids)
        result["cpu_us"] = (cpu_seconds(pid) - before) / max(1, result["requests"]) * 1e6
    return result


def compare(stack: Stack, load: Load, new_sessions: NewSessions, rounds: int) -> list[str]:
    runs: dict[str, list[dict[str, Any]]] = {"off": [], **{name: [] for name in MODES}}
    exported: dict[str, Any] = {}
    for _ in range(rounds):
        runs["off"].append(_run(stack, load, new_sessions()))
        for name, extra in MODES.items():
            session_ids = new_sessions()
            with otlp_sink() as (endpoint, counts):
                runs[name].append(_run(stack, load, session_ids, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, **extra))
            exported[name] = counts
    lines = [
        f"{'tracing':<24}{'cmd/s by round':>26}{'median':>8}{'p99 ms':>8}{'API CPU µs/cmd by round':>34}  exported"
    ]
    off = runs["off"]
    for name, results in runs.items():
        rates = [r["per_second"] for r in results]
        cpu = statistics.median(r["cpu_us"] for r in results)
        p99 = statistics.median(r["p99_ms"] for r in results)
        sent = exported.get(name, {})
        spans = f"{sent.get('spans', 0)} spans in {sent.get('requests', 0)} requests (last round)" if sent else "-"
        by_round = " ".join(f"{r:.0f}" for r in rates)
        cpus = " ".join(f"{r['cpu_us']:.0f}" for r in results) + f" (median {cpu:.0f})"
        lines.append(f"{name:<24}{by_round:>26}{statistics.median(rates):>8.0f}{p99:>8.1f}{cpus:>34}  {spans}")
    for name in MODES:
        ratios = [b["per_second"] / a["per_second"] for a, b in zip(off, runs[name], strict=True)]
        cpu_ratio = statistics.median(r["cpu_us"] for r in off) / statistics.median(r["cpu_us"] for r in runs[name])
        lines.append(
            f"ratio {name} / off: throughput {statistics.median(ratios):.2f} (median of {rounds} rounds), "
            f"API CPU per command {cpu_ratio:.2f} (off ÷ on; goal ≥ 0.9)"
        )
    return lines


def new_sessions_from(dsn: str, count: int, make: Callable[[str, int], Any]) -> NewSessions:
    return lambda: list(asyncio.run(make(dsn, count)))


def main() -> None:
    """`python -m tests.benchmarks.bench_tracing`: this part of `make bench-api` alone (BENCH_TRACING_MODES,
    names of MODES separated by `;`, picks the modes run against off; all by default)."""
    from tests.benchmarks import bench_api
    from tests.benchmarks.harness import api_stack

    picked = [m.strip() for m in os.environ.get("BENCH_TRACING_MODES", "").split(";") if m.strip()]
    for name in [m for m in MODES if picked and m not in picked]:
        del MODES[name]
    with api_stack("tracing") as stack:
        fresh = new_sessions_from(stack.dsn, bench_api.SESSIONS, bench_api.sessions)
        lines = compare(stack, lambda url, ids: bench_api.load("http", url, ids, stack.env, stack.workdir), fresh,
                        max(1, bench_api.ROUNDS))  # fmt: skip
    print("\n".join(lines))


if __name__ == "__main__":
    main()
