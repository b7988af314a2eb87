"""What the benchmarks share: a PostgreSQL (DATABASE_URL's server, else an embedded one) with a
fresh migrated database, and the real `genesis api` process serving it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from genesis.auth.tokens import issue_token
from genesis.local.services import LocalPostgres, free_port, wait_for_port
from genesis.settings import Settings
from tests.conftest import fresh_database
from tests.processes import genesis_command

SECRET = "bench-secret-" + "x" * 32
USER = "bench"


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Stack:
    dsn: str
    base_url: str
    env: dict[str, str]  # DATABASE_URL, JWT_SECRET and a TOKEN for USER, for child processes
    workdir: Path
    api_pid: int = 0


@contextlib.contextmanager
def api_stack(name: str) -> Iterator[Stack]:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    server = None
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        say("starting an embedded PostgreSQL …")
        server = LocalPostgres(workdir / "pg")
        admin_url = server.start()
    api = None
    try:
        dsn = asyncio.run(fresh_database(admin_url, f"genesis_bench_{name}", log=say))
        port = free_port()
        env = {**os.environ, "DATABASE_URL": dsn, "JWT_SECRET": SECRET, "API_PORT": str(port), "LOG_LEVEL": "WARNING",
               "TOKEN": issue_token(Settings(jwt_secret=SECRET), USER, 3600), "BENCH_USER": USER}  # fmt: skip
        api = subprocess.Popen([genesis_command(), "api"], env=env)
        wait_for_port(port, process=api)
        yield Stack(dsn, f"http://127.0.0.1:{port}", env, workdir, api.pid)
    finally:
        if api is not None:
            stop(api)
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)  # the embedded PostgreSQL's data: ~0.5–1.5 GB a run


@contextlib.contextmanager
def another_api(stack: Stack, **settings: str) -> Iterator[tuple[str, int]]:
    """A second `genesis api` on the stack's database, with `settings` added; yields its base URL and pid."""
    port = free_port()
    api = subprocess.Popen([genesis_command(), "api"], env={**stack.env, "API_PORT": str(port), **settings})
    try:
        wait_for_port(port, process=api)
        yield f"http://127.0.0.1:{port}", api.pid
    finally:
        stop(api)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (Linux /proc), so a cost per request survives a busy neighbour."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(postmaster: int) -> float:
    """CPU of a PostgreSQL server's processes (its postmaster's children: backends, WAL writer, checkpointer…) that
    are alive now; a backend that exits takes its share with it, so measure over connections that stay."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def postmaster_pid(dsn: str) -> int | None:
    """The server's postmaster, when it runs on this machine and its data directory is readable; else None."""
    conn = await asyncpg.connect(dsn)
    try:
        data = await conn.fetchval("SELECT setting FROM pg_settings WHERE name = 'data_directory'")
    except asyncpg.PostgresError:  # reading data_directory needs pg_read_all_settings
        return None
    finally:
        await conn.close()
    try:
        return int((Path(data) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(15)
