"""PgBouncer in transaction pooling in front of the tests' PostgreSQL: Debian's `pgbouncer` (1.18 on Debian 12, which
CI installs), run as a process of the test's own with its own ini, never the system service."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

from genesis.local.services import free_port, wait_for_port


@dataclass(frozen=True)
class Pooler:
    port: int
    log: Path

    def url(self, database_url: str) -> str:
        """The database of `database_url`, through the pooler."""
        name = urlsplit(database_url).path.lstrip("/")
        return f"postgresql://genesis@127.0.0.1:{self.port}/{quote(name)}"


def binary() -> str:
    """The pgbouncer executable, or a skip that says why there is none."""
    found = shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer",) if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.skip("pgbouncer is not installed (CI installs Debian's: apt-get install pgbouncer)")
    return found


def _server(admin_url: str) -> tuple[str, int, str, str]:
    """Host (or socket directory), port, user and password of the tests' PostgreSQL."""
    parts = urlsplit(admin_url)
    query = parse_qs(parts.query)
    host = parts.hostname or query.get("host", ["127.0.0.1"])[0]
    port = parts.port or int(query.get("port", ["5432"])[0])
    return host, port, unquote(parts.username or "postgres"), unquote(parts.password or "")


def _run_as(host: str) -> list[str]:
    """PgBouncer refuses to run as root: then it runs as whoever may reach the server (a socket's owner)."""
    if os.geteuid() != 0:
        return []
    owner = pwd.getpwuid(os.stat(host).st_uid).pw_name if host.startswith("/") else "nobody"
    return ["-u", owner]


def _configure(admin_url: str, pool_size: int) -> tuple[Path, int, list[str]]:
    """A work directory with the ini; the port it listens on; the user to run as (arguments)."""
    host, port, user, password = _server(admin_url)
    workdir = Path(tempfile.mkdtemp(prefix="genesis-pgbouncer-"))
    workdir.chmod(0o755)  # readable by the user it switches to
    listen = free_port()
    ini = workdir / "pgbouncer.ini"
    ini.write_text(
        f"""[databases]
* = host={host} port={port} user={user}{f" password={password}" if password else ""}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 1000
"""
    )
    ini.chmod(0o644)
    return workdir, listen, _run_as(host)


@contextlib.asynccontextmanager
async def transaction_pooler(admin_url: str, *, pool_size: int = 3) -> AsyncIterator[Pooler]:
    """PgBouncer with `pool_size` server connections per database, shared by transaction."""
    executable = binary()
    workdir, listen, run_as = _configure(admin_url, pool_size)
    log = workdir / "pgbouncer.log"
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: ASYNC220 - a server
            [executable, *run_as, str(workdir / "pgbouncer.ini")], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        await asyncio.to_thread(wait_for_port, listen, process=process)
        yield Pooler(listen, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # immediate shutdown
        await asyncio.to_thread(process.wait, 20)
        shutil.rmtree(workdir, ignore_errors=True)
