"""Fixtures of the acceptance tests: `genesis dev` (what `make run` runs) as a newcomer starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from genesis.local.services import free_port
from tests.processes import genesis_command


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, int]]:
    """`genesis dev` running on free ports; yields the process, its output up to the end of the banner, its port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR") or k.startswith("COVERAGE_")}
    env |= {"GENESIS_STATE_DIR": str(tmp_path / "state"), "API_PORT": str(port),
            "RELAY_METRICS_PORT": str(free_port()), "GENESIS_DEV": "1"}  # fmt: skip
    log = tmp_path / "dev.log"  # a file, not a pipe: nothing blocks its writes while the test looks elsewhere
    with log.open("wb") as out:
        process = subprocess.Popen([genesis_command(), "dev"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while "genesis outbox stats;" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        yield process, log.read_text(errors="replace"), port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=60)
