"""Kafka's jars from Maven Central, resolved once into a cache folder outside the repo.

A generated pom and `mvn dependency:copy-dependencies` fill `~/.cache/genesis/kafka-3.7.0/lib`
(GENESIS_KAFKA_CACHE), under a file lock so two processes never race; later runs use that folder and
need neither Maven nor the network. No tarball, no Docker.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

KAFKA_VERSION = "3.7.0"
SCALA_VERSION = "2.13"
SLF4J_VERSION = "1.7.36"  # the slf4j line Kafka 3.7 is built on; slf4j-reload4j binds it to log4j 1 (reload4j)
MAVEN_TIMEOUT = 300.0

POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>genesis.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_{SCALA_VERSION}</artifactId><version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>{SLF4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""


class ProvisionError(Exception):
    """Kafka could not be provisioned here; the message is one line saying why."""


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "genesis" / f"kafka-{KAFKA_VERSION}"
    return Path(os.environ.get("GENESIS_KAFKA_CACHE", str(default)))


def _lib() -> Path:
    return cache_dir() / "lib"


def jars_cached() -> bool:
    return (_lib() / ".complete").exists()


def unavailable() -> str | None:
    """Why Kafka cannot run here (no working java; no mvn while the jars are not cached), or None."""
    java = shutil.which("java")
    if java is None:
        return "no java on PATH"
    try:
        subprocess.run([java, "-version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"java -version failed: {exc}"
    if not jars_cached() and shutil.which("mvn") is None:
        return f"no mvn on PATH, and no Kafka jars cached in {cache_dir()}"
    return None


def ensure_jars(*, timeout: float = MAVEN_TIMEOUT, log: Callable[[str], None] = print) -> Path:
    """The folder of Kafka's jars, resolved from Maven Central on first use; raises ProvisionError."""
    lib = _lib()
    if jars_cached():
        return lib
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        deadline = time.monotonic() + timeout
        while True:  # a bounded wait for another process resolving the same jars
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ProvisionError(f"another process holds {cache / '.lock'} for over {timeout:.0f}s") from None
                time.sleep(0.5)
        if jars_cached():  # the other process finished it
            return lib
        log(f"resolving org.apache.kafka:kafka_{SCALA_VERSION}:{KAFKA_VERSION} from Maven Central into {lib} …")
        (cache / "pom.xml").write_text(POM)
        partial = cache / f"lib.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        command = ["mvn", "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={partial}"]
        command.append("-DincludeScope=runtime")
        try:
            done = subprocess.run(command, cwd=cache, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ProvisionError(f"mvn dependency:copy-dependencies took over {timeout:.0f}s") from None
        except OSError as exc:
            raise ProvisionError(f"mvn could not run: {exc}") from None
        if done.returncode != 0 or not (partial / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar").exists():
            errors = [x for x in (done.stdout + done.stderr).splitlines() if "ERROR" in x] or ["no jars"]
            raise ProvisionError(f"mvn dependency:copy-dependencies failed: {errors[0].strip()[:300]}")
        shutil.rmtree(lib, ignore_errors=True)
        partial.rename(lib)
        (lib / ".complete").touch()
    return lib
