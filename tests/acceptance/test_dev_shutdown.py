"""`make run | tee run.log`, then Ctrl-C: nothing of `genesis dev` is left behind, even when the pipe dies first.

A terminal's Ctrl-C is SIGINT to the foreground process group; `tee` (here: the test's end of the pipe) may be
gone before `genesis dev` has stopped anything, so its every later write fails. The embedded PostgreSQL and the
broker run in sessions of their own, so only `genesis dev` can stop them: the test checks they are gone.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from genesis.local.services import free_port
from tests.processes import genesis_command


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@pytest.mark.parametrize("second_ctrl_c", [False, True])
def test_ctrl_c_with_the_pipe_gone_first_leaves_no_process(tmp_path: Path, second_ctrl_c: bool) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env |= {"GENESIS_STATE_DIR": str(tmp_path / "state"), "API_PORT": str(port),
            "RELAY_METRICS_PORT": str(free_port()), "GENESIS_DEV": "1"}  # fmt: skip
    # Its own process group, as a terminal's foreground job would be; stdout and stderr into one pipe, as `2>&1 | tee`.
    dev = subprocess.Popen(
        [genesis_command(), "dev"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    assert dev.stdout is not None
    seen = b""
    deadline = time.monotonic() + 120
    while b"listening on genesis_outbox_v1" not in seen and b"listening on genesis_events_v1" not in seen:
        chunk = os.read(dev.stdout.fileno(), 65536)
        assert chunk, seen.decode()[-3000:]
        seen += chunk
        assert time.monotonic() < deadline, seen.decode()[-3000:]
    broker_port = int(re.search(rb"broker 127\.0\.0\.1:(\d+)", seen).group(1))  # type: ignore[union-attr]
    postmaster = int((tmp_path / "state" / "pg" / "postmaster.pid").read_text().split()[0])
    assert _alive(postmaster)
    assert _listening(broker_port)

    dev.stdout.close()  # tee is gone first…
    os.killpg(dev.pid, signal.SIGINT)  # …and Ctrl-C reaches the whole group
    if second_ctrl_c:
        time.sleep(0.3)
        os.killpg(dev.pid, signal.SIGINT)  # an impatient user presses it again while it stops
    dev.wait(timeout=60)

    deadline = time.monotonic() + 20
    while (_alive(postmaster) or _listening(broker_port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(postmaster), "the embedded PostgreSQL was left running"
    assert not _listening(broker_port), "the local broker was left running"
    assert not _listening(port)
