"""Provisioning Kafka's jars: what a failing or missing Maven gives (one line saying why), and that a
resolved cache is used as it is. A fake `mvn` on PATH stands in for Maven Central's answers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from genesis.local import kafka_jars

FAIL = '#!/bin/sh\necho "[ERROR] Could not resolve dependencies: Network is unreachable"\nexit 1\n'
# Succeeds the way copy-dependencies does: the jars appear in -DoutputDirectory.
SUCCEED = """#!/bin/sh
for arg in "$@"; do case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac; done
mkdir -p "$out" && touch "$out/kafka_2.13-3.7.0.jar" && echo called >> "$(dirname "$out")/calls"
"""


@pytest.fixture
def fake_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GENESIS_KAFKA_CACHE", str(tmp_path / "cache"))
    return bin_dir / "mvn"


def test_a_failing_maven_is_one_line_saying_why(fake_mvn: Path) -> None:
    fake_mvn.write_text(FAIL)
    fake_mvn.chmod(0o755)
    with pytest.raises(kafka_jars.ProvisionError) as failed:
        kafka_jars.ensure_jars(log=lambda _line: None)
    (line,) = str(failed.value).splitlines()
    assert (
        line
        == "mvn dependency:copy-dependencies failed: [ERROR] Could not resolve dependencies: Network is unreachable"
    )
    assert not kafka_jars.jars_cached()


def test_jars_are_resolved_once_then_taken_from_the_cache(fake_mvn: Path, tmp_path: Path) -> None:
    fake_mvn.write_text(SUCCEED)
    fake_mvn.chmod(0o755)
    lib = kafka_jars.ensure_jars(log=lambda _line: None)
    assert (lib / "kafka_2.13-3.7.0.jar").exists()
    assert "<artifactId>kafka_2.13</artifactId>" in (tmp_path / "cache" / "pom.xml").read_text()
    fake_mvn.unlink()  # no Maven (and no network) needed any more
    assert kafka_jars.ensure_jars(log=lambda _line: None) == lib
    assert (tmp_path / "cache" / "calls").read_text() == "called\n"
    if shutil.which("java"):
        assert kafka_jars.unavailable() is None  # java and the cache suffice


def test_without_maven_or_a_cache_kafka_is_unavailable(fake_mvn: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(fake_mvn.parent))  # neither java nor mvn
    assert kafka_jars.unavailable() == "no java on PATH"
