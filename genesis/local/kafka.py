"""Apache Kafka 3.7.0 as local processes (tests, benchmarks), from the jars genesis.local.kafka_jars caches.

A node is a combined broker + controller in KRaft mode; a `KafkaCluster` owns its nodes' processes,
ports and data dirs, and is the one handle the tests kill, stop and restart nodes by.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.cluster import ClusterMetadata
from aiokafka.conn import create_conn
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.structs import TopicPartition

from genesis.local.kafka_jars import KAFKA_VERSION, ensure_jars
from genesis.local.services import free_port

# A small heap and a quick start on a shared 2-core machine: C1 only, serial GC.
JVM_OPTS = "-Xmx256m -Xms64m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData"
START_TIMEOUT = 120.0  # generous: five engineers' test suites share the two cores
STOP_TIMEOUT = 30.0
STOP_GRACE = 10.0  # for the whole cluster's shutdown, after which what is left is killed

T = TypeVar("T")

LOG4J = """log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
"""


def _cluster_id() -> str:
    """A random KRaft cluster id; never one starting with '-', which kafka-storage would take for an option
    (Kafka's own Uuid.randomUuid skips those too)."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def _in_own_loop(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Runs a coroutine to completion from sync code, even when the caller's thread has a running loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, make()).result()


@dataclass
class KafkaNode:
    node_id: int
    port: int  # the broker listener
    controller_port: int
    advertised_port: int  # what clients are told to connect to (a proxy's port, or `port`)
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


class KafkaCluster:
    """`nodes` combined broker + controller nodes on 127.0.0.1 in `workdir`, as one context manager.

    With three nodes: replication factor 3 by default, min.insync.replicas 2, no unclean leader
    election. `properties` add to or override every node's server.properties (e.g.
    message.max.bytes). Nodes are numbered 1…N; `kill`, `terminate` and `restart` take that number.
    """

    def __init__(
        self,
        workdir: Path,
        nodes: int = 1,
        *,
        properties: Mapping[str, object] | None = None,
        advertised_ports: Sequence[int] | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.workdir = workdir.resolve()
        self.properties = dict(properties or {})
        self.log = log
        self.cluster_id = _cluster_id()
        self.startup_seconds: float | None = None
        ports = [(free_port(), free_port()) for _ in range(nodes)]
        advertised = list(advertised_ports or [p for p, _ in ports])
        self.nodes = {
            i + 1: KafkaNode(i + 1, p, c, advertised[i], self.workdir / f"node-{i + 1}")
            for i, (p, c) in enumerate(ports)
        }
        self._lib: Path | None = None

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{n.advertised_port}" for n in self.nodes.values())

    @property
    def replication(self) -> int:
        return min(3, len(self.nodes))

    def __enter__(self) -> KafkaCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def start(self, timeout: float = START_TIMEOUT) -> str:
        """Formats every node's storage, starts them, and waits until all answer metadata."""
        started = time.monotonic()
        self._lib = ensure_jars(log=self.log)
        atexit.register(self.stop)  # a test run that dies must not leave JVMs behind
        for node in self.nodes.values():
            self._format(node)
        for node in self.nodes.values():
            self._spawn(node)
        self._wait_registered(set(self.nodes), timeout)
        self.startup_seconds = time.monotonic() - started
        self.log(f"Apache Kafka {KAFKA_VERSION}: {len(self.nodes)} node(s) up in {self.startup_seconds:.1f}s")
        return self.bootstrap_servers

    def stop(self) -> None:
        """SIGTERM to every node at once (one by one, the last would wait for a quorum that is gone)."""
        for node in self.nodes.values():
            if node.alive:
                assert node.process is not None
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes.values():
            self._end(node, signal.SIGKILL, 0)  # reaps it, or kills what is still there after the wait
        atexit.unregister(self.stop)

    def kill(self, node_id: int) -> None:
        """SIGKILL: no controlled shutdown, no flush; leaders it held need an election."""
        self._end(self.nodes[node_id], signal.SIGKILL, STOP_TIMEOUT)

    def terminate(self, node_id: int, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM: a controlled shutdown (leadership moved away first); SIGKILL after `timeout`."""
        self._end(self.nodes[node_id], signal.SIGTERM, timeout)

    def restart(self, node_id: int, timeout: float = START_TIMEOUT) -> None:
        """Starts a stopped node again on its own data dir and ports; waits until it is registered."""
        node = self.nodes[node_id]
        assert not node.alive, f"node {node_id} is running"
        started = time.monotonic()
        self._spawn(node)
        self._wait_registered({n for n, x in self.nodes.items() if x.alive}, timeout, ask=node)
        self.log(f"Apache Kafka node {node_id} back in {time.monotonic() - started:.1f}s")

    async def leaders(self, topic: str) -> dict[int, int]:
        """Partition → the node leading it (-1: none), as the live nodes' metadata says."""
        cluster = await self._metadata()
        partitions = cluster.partitions_for_topic(topic) or set()
        return {p: int(cluster.leader_for_partition(TopicPartition(topic, p)) or -1) for p in sorted(partitions)}

    async def leader_of(self, topic: str, partition: int) -> int:
        return (await self.leaders(topic)).get(partition, -1)

    async def create_topic(
        self,
        topic: str,
        partitions: int,
        replication: int | None = None,
        configs: Mapping[str, str] | None = None,
        *,
        within: float = 60,
    ) -> None:
        """Creates the topic and waits until every partition has a leader (before any relay starts)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=30_000)
        await admin.start()
        try:
            new = NewTopic(topic, partitions, replication or self.replication, topic_configs=dict(configs or {}))
            response = await admin.create_topics([new])
            errors = [e for e in response.topic_errors if e[1] != 0]
            assert not errors, f"create_topics {topic}: {errors}"
        finally:
            await admin.close()
        deadline = time.monotonic() + within
        replicas = partitions * (replication or self.replication)
        while True:
            leaders = await self.leaders(topic)
            if len(leaders) == partitions and min(leaders.values()) >= 0 and self._topic_ids_on_disk(topic) == replicas:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic}: partitions without a leader after {within}s: {leaders}")
            await asyncio.sleep(0.1)

    def _topic_ids_on_disk(self, topic: str) -> int:
        """Replicas of `topic` whose partition.metadata (the topic id) is on disk. Kafka 3.7.0 writes it
        a moment after creating the replica, and a node killed in between cannot start again
        (KAFKA-16814, fixed in 3.8): the tests kill nodes only once it is there."""
        return sum(
            1
            for node in self.nodes.values()
            for directory in (node.data_dir / "log").glob(f"{topic}-*")
            if directory.name.rsplit("-", 1)[0] == topic and (directory / "partition.metadata").exists()
        )

    # --- processes ---------------------------------------------------------------------------

    def _java(self, main: str, *args: str, node: KafkaNode) -> list[str]:
        opts = os.environ.get("GENESIS_KAFKA_JVM_OPTS", JVM_OPTS).split()
        logging = f"-Dlog4j.configuration=file:{node.data_dir / 'log4j.properties'}"
        return ["java", *opts, logging, "-cp", f"{self._lib}/*", main, *args]

    def _format(self, node: KafkaNode) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        (node.data_dir / "log4j.properties").write_text(LOG4J)
        config = node.data_dir / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in self._server_properties(node).items()))
        command = self._java("kafka.tools.StorageTool", "format", "-t", self.cluster_id, "-c", str(config), node=node)
        try:
            subprocess.run(command, capture_output=True, check=True, timeout=START_TIMEOUT)
        except subprocess.CalledProcessError as exc:
            tail = exc.stdout.decode(errors="replace")[-500:] + exc.stderr.decode(errors="replace")[-500:]
            raise RuntimeError(f"kafka-storage format of node {node.node_id} failed: {tail}") from None

    def _server_properties(self, node: KafkaNode) -> dict[str, object]:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes.values())
        r = self.replication
        properties: dict[str, object] = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.advertised_port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": node.data_dir / "log",
            "default.replication.factor": r,
            "offsets.topic.replication.factor": r,
            "transaction.state.log.replication.factor": r,
            "transaction.state.log.min.isr": min(2, r),
            "min.insync.replicas": min(2, r),
            "unclean.leader.election.enable": "false",
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": 0,
            # Sized for a 256 MB heap and two cores: the cleaner's default 128 MB buffer would not fit.
            "log.cleaner.dedupe.buffer.size": 8 * 1024 * 1024,
            "num.network.threads": 2,
            "num.io.threads": 2,
            "num.recovery.threads.per.data.dir": 1,
        }
        properties.update(self.properties)
        return properties

    def _spawn(self, node: KafkaNode) -> None:
        node._log = (node.data_dir / "kafka.log").open("ab")
        node.process = subprocess.Popen(
            self._java("kafka.Kafka", str(node.data_dir / "server.properties"), node=node),
            stdout=node._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it ourselves
        )

    def _end(self, node: KafkaNode, how: signal.Signals, timeout: float) -> None:
        process = node.process
        if process is not None and process.poll() is None:
            if timeout > 0:
                process.send_signal(how)
            try:
                process.wait(timeout or STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        node.process = None
        if node._log is not None:
            node._log.close()
            node._log = None

    def _wait_registered(self, expected: set[int], timeout: float, ask: KafkaNode | None = None) -> None:
        """Until the metadata of the live nodes (of `ask` alone if given: another node's may lag)
        lists exactly `expected` as (unfenced) brokers."""
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while time.monotonic() < deadline:
            for node in self.nodes.values():
                if node.node_id in expected and not node.alive:
                    assert node.process is not None
                    tail = (node.data_dir / "kafka.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"Kafka node {node.node_id} exited with {node.process.returncode}:\n{tail}")
            with contextlib.suppress(Exception):
                seen = {b.nodeId for b in _in_own_loop(lambda: self._metadata(ask)).brokers()}
                if seen == expected:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"Kafka nodes {sorted(expected)} not all registered after {timeout}s (seen {sorted(seen)})")

    async def _metadata(self, ask: KafkaNode | None = None) -> Any:
        """Cluster metadata from the first live node that answers (or `ask`), asked on its own port
        (not a proxy's)."""
        failure: BaseException = ConnectionError("no live Kafka node")
        for node in [ask] if ask else [n for n in self.nodes.values() if n.alive]:
            try:
                conn = await create_conn("127.0.0.1", node.port, request_timeout_ms=5_000)
            except Exception as exc:
                failure = exc
                continue
            try:
                cluster = ClusterMetadata()
                cluster.update_metadata(await conn.send(MetadataRequest(None, False)))  # None: every topic
                return cluster
            except Exception as exc:
                failure = exc
            finally:
                conn.close()
        raise failure
