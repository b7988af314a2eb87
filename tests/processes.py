"""A `genesis …` subprocess that tests start, signal and read the JSON log lines of."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Self


def genesis_command() -> str:
    """The console script of the environment running the tests."""
    beside = Path(sys.executable).with_name("genesis")
    return str(beside) if beside.exists() else (shutil.which("genesis") or "genesis")


class ServiceProcess:
    """One subprocess of `argv`; its stderr (the JSON log) goes to `log_path`."""

    def __init__(self, argv: tuple[str, ...], env: Mapping[str, str], log_path: Path) -> None:
        self.argv = argv
        self.env = dict(env)
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> Self:
        self._log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=self._log
        )
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to finish, settle, commit or say goodbye."""
        os.kill(self.pid, signal.SIGKILL)

    async def stop(self, within: float) -> tuple[int, float]:
        """SIGTERM; the exit code, which must come within `within` seconds, and how long it took."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), within)
        return code, time.monotonic() - started

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, TimeoutError):
                await self.stop(within=12)  # graceful, so coverage data gets written
            if self.process.returncode is None:
                self.kill()
                await self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def logs(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                line = json.loads(raw)
                if isinstance(line, dict):
                    lines.append(line)
        return lines
