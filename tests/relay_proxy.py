"""Real network faults for the relay tests: a TCP proxy that resets its connections and refuses new
ones on demand, and a private broker that clients can only reach through such a proxy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from genesis.local.kafka import KafkaCluster
from genesis.local.services import LocalBroker, free_port


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
    """A private broker that advertises a TcpProxy's address, so every client goes through the proxy:
    Apache Kafka when the run has it (tests/brokers.py), Tansu otherwise."""

    def __init__(self, log_path: Path) -> None:
        from tests.brokers import choice  # the run's broker choice, made once

        advertised = free_port()
        self._kafka: KafkaCluster | None = None
        self._tansu: LocalBroker | None = None
        if choice().local_kafka:
            self._kafka = KafkaCluster(log_path.parent / "kafka", 1, advertised_ports=[advertised])
            upstream = self._kafka.nodes[1].port
        else:
            self._tansu = LocalBroker(free_port(), log_path, advertised_port=advertised)
            upstream = self._tansu.port
        self.proxy = TcpProxy(("127.0.0.1", upstream))
        self.proxy.port = advertised

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.proxy.port}"

    async def start(self) -> str:
        await self.proxy.start()
        try:
            if self._kafka is not None:
                from tests.brokers import start_cluster

                await asyncio.to_thread(start_cluster, self._kafka, "a broker behind a proxy")
            else:
                assert self._tansu is not None
                await asyncio.to_thread(self._tansu.start)
        except BaseException:
            await self.stop()  # the proxy's socket and any half-started broker, not left to the GC
            raise
        return self.bootstrap_servers

    async def stop(self) -> None:
        await self.proxy.cut()
        if self._kafka is not None:
            await asyncio.to_thread(self._kafka.stop)
        if self._tansu is not None:
            await asyncio.to_thread(self._tansu.stop)
