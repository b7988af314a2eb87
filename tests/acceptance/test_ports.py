"""A port already in use, as an operator meets it: `genesis api`, `genesis relay` and `genesis dev` (what `make run`
calls) say so in one line naming the port and its setting and exit non-zero, and `genesis dev` never says first that
Genesis is running (a pasted curl would reach whatever owns the port)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from genesis.local.services import free_port
from tests.conftest import JWT_SECRET
from tests.processes import genesis_command


@contextlib.contextmanager
def _taken() -> Iterator[int]:
    """A port that something else listens on, for as long as the block runs."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield int(other.getsockname()[1])


def _run(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR") or k.startswith("COVERAGE_")}
    env = {**keep, "JWT_SECRET": JWT_SECRET, "API_HOST": "127.0.0.1", **settings}
    return subprocess.run([genesis_command(), *args], env=env, capture_output=True, text=True, timeout=90, check=False)


def _refused(result: subprocess.CompletedProcess[str], setting: str, port: int) -> None:
    said = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode != 0, said[-20:]
    assert said == [f"genesis: {setting}: 127.0.0.1:{port} is already in use"], said[-20:]


def test_genesis_api_on_a_port_in_use(database_url: str) -> None:
    with _taken() as port:
        result = _run("api", DATABASE_URL=database_url, API_PORT=str(port))
    _refused(result, "API_PORT", port)


def test_genesis_relay_with_its_metrics_port_in_use(database_url: str, kafka_bootstrap: str) -> None:
    with _taken() as port:
        result = _run(
            "relay", DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, RELAY_METRICS_PORT=str(port)
        )
    _refused(result, "RELAY_METRICS_PORT", port)


@pytest.mark.parametrize("setting", ["API_PORT", "RELAY_METRICS_PORT"])
def test_genesis_dev_on_a_port_in_use_says_nothing_is_running(
    database_url: str, kafka_bootstrap: str, tmp_path: Path, setting: str
) -> None:
    ports = {"API_PORT": str(free_port()), "RELAY_METRICS_PORT": str(free_port())}
    with _taken() as port:
        ports[setting] = str(port)
        result = _run(
            "dev",
            GENESIS_DEV="1",
            GENESIS_STATE_DIR=str(tmp_path / "state"),
            DATABASE_URL=database_url,
            KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            **ports,
        )
    _refused(result, setting, port)
