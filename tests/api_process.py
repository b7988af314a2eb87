"""The real `genesis api` console script in a process of its own, for tests that act as a hostile client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass

from genesis.local.services import free_port, wait_for_port
from tests.conftest import JWT_SECRET
from tests.processes import genesis_command


@dataclass
class ApiProcess:
    process: subprocess.Popen[bytes]
    port: int
    output: str = ""  # what it wrote to stderr, once it has exited

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def running_api(database_url: str, **env: str) -> AsyncIterator[ApiProcess]:
    """Starts `genesis api` (JWT_SECRET by default, `env` on top) and stops it by its pid, asserting a clean exit."""
    port = free_port()
    full = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_SECRET": JWT_SECRET,
        "API_PORT": str(port),
        "SERVICE_TYPE": "api",
        "LOG_LEVEL": "WARNING",
        **env,
    }
    process = subprocess.Popen([genesis_command()], env=full, stderr=subprocess.PIPE)  # noqa: ASYNC220 - a server
    api = ApiProcess(process, port)
    try:
        await asyncio.to_thread(wait_for_port, port, process=process)
        yield api
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(process.communicate, timeout=20)
    log = api.output = stderr.decode()
    assert "Traceback" not in log, log[-4000:]
    assert process.returncode == 0, log[-2000:]
