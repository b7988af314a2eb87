"""The `genesis` console script, run the way an operator runs it: a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jwt
import pytest

from genesis.local.services import free_port, wait_for_port
from tests.conftest import JWT_SECRET
from tests.processes import genesis_command

GENESIS = genesis_command()


def _env(**settings: str) -> dict[str, str]:
    """A clean environment: nothing of the caller's service settings, only what the test gives."""
    # COVERAGE_* lets coverage measure the subprocess when it is set up to (`patch = subprocess`).
    keep = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH") or k.startswith("COVERAGE_")
    }
    return {**keep, **settings}


def _run(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GENESIS, *args], env=_env(**settings), capture_output=True, text=True, timeout=60, check=False
    )


def test_the_console_script_is_installed() -> None:
    # The script the other tests run is the one `pip install -e .` put beside this interpreter.
    assert Path(GENESIS).parent == Path(sys.executable).parent, f"{GENESIS} is not the environment's own"
    assert Path(GENESIS).is_file(), f"{GENESIS} missing: pip install -e . installs it"


def test_migrate_twice(database_url: str) -> None:
    for _ in range(2):
        result = _run("migrate", DATABASE_URL=database_url)
        assert result.returncode == 0, result.stderr
        assert "installed" in result.stdout


def test_token_prints_a_jwt_for_the_user() -> None:
    result = _run("token", "--user", "bob", "--ttl", "120", JWT_SECRET=JWT_SECRET)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "bob"
    assert 0 < claims["exp"] - time.time() <= 120


def test_token_without_a_secret_or_with_a_bad_ttl_exits_2() -> None:
    result = _run("token", "--user", "bob")
    assert result.returncode == 2
    assert "JWT_SECRET" in result.stderr
    result = _run("token", "--user", "bob", "--ttl", "0", JWT_SECRET=JWT_SECRET)
    assert result.returncode == 2
    assert "--ttl" in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [("API_PORT", "abc"), ("RELAY_BATCH_SIZE", "0"), ("LOG_LEVEL", "LOUD"), ("DATABASE_URL", "postgresql://[db")],
)
def test_a_malformed_setting_exits_2_with_one_line_naming_it(name: str, value: str) -> None:
    result = _run("migrate", **{"DATABASE_URL": "postgresql://127.0.0.1:1/x", name: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0]
    assert "Traceback" not in result.stderr


def test_api_with_a_public_key_and_no_stream_token_secret_exits_2_naming_it() -> None:
    """The API signs stream tokens itself (CONTRACT §5): with a public key it has no secret to derive their key from."""
    result = _run("api", DATABASE_URL="postgresql://127.0.0.1:1/x", JWT_PUBLIC_KEY="-----BEGIN PUBLIC KEY-----")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("genesis: STREAM_TOKEN_SECRET is required with JWT_PUBLIC_KEY or JWT_JWKS_URL")


ARGUMENT_ERRORS = [
    ("outbox", "prune", "--older-than", "1e30d"),
    ("outbox", "prune", "--older-than", "99999999999999999999d"),  # beyond PostgreSQL's interval
    ("outbox", "prune"),
    ("outbox", "requeue", "--id", str(2**63)),  # beyond a bigint
    ("outbox", "requeue", "--id", "-99999999999999999999"),
    ("outbox", "requeue", "--id", "1", "--all-failed"),
    ("outbox", "discard", "--id", "7" * 30, "--reason", "gone"),
    ("outbox", "requeue", "--id", "1_000"),  # int() would take it; the API's ?after= does not
    ("outbox", "requeue", "--id", "\u0665"),  # ARABIC-INDIC DIGIT FIVE
    ("outbox", "discard", "--id", "1", "--reason", "\udcff"),  # the byte 0xff: not UTF-8
    ("outbox", "show", "--event-id", "nope"),
    ("outbox", "frob"),
    ("token", "--user", "bob", "--ttl", "1e3"),
    ("token", "--user", "bob", "--ttl", "9" * 5000),
    ("token", "--user", ""),
    ("token",),
    ("topic", "tail", "--session", "x"),
    ("--bogus",),
    ("nope",),
]


@pytest.mark.parametrize("args", ARGUMENT_ERRORS, ids=[" ".join(a)[:50] for a in ARGUMENT_ERRORS])
def test_every_argument_error_is_one_line_and_exit_2(database_url: str, args: tuple[str, ...]) -> None:
    # Everything a command needs is set and reachable: only the argument can be wrong.
    result = _run(*args, DATABASE_URL=database_url, JWT_SECRET=JWT_SECRET, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("genesis"), lines


def test_a_database_that_does_not_answer_is_one_line() -> None:
    result = _run("outbox", "stats", DATABASE_URL="postgresql://127.0.0.1:1/genesis")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert "DATABASE_URL" in lines[0]


def test_a_missing_database_url_exits_2_naming_it() -> None:
    result = _run("migrate")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["genesis: DATABASE_URL is required but not set"]


def test_no_command_and_no_service_type_exits_2_naming_service_type() -> None:
    for settings in ({}, {"SERVICE_TYPE": "worker"}):
        result = _run(**settings)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "SERVICE_TYPE" in lines[0]


def test_service_type_api_serves_healthz_and_stops_on_sigterm(database_url: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        [GENESIS],
        env=_env(SERVICE_TYPE="api", DATABASE_URL=database_url, JWT_SECRET=JWT_SECRET, API_PORT=str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, process=process, timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert json.loads(response.read()) == {"status": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            assert json.loads(response.read())["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_outbox_stats_prints_json(database_url: str) -> None:
    result = _run("outbox", "stats", DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    # A fresh database: every count, and the oldest pending age, is zero (sql/functions/outbox_stats.sql).
    assert json.loads(result.stdout) == {
        "backlog": 0,
        "pending": 0,
        "claimed": 0,
        "retrying": 0,
        "blocked": 0,
        "blocked_sessions": 0,
        "failed": 0,
        "oldest_pending_age_seconds": 0.0,
    }


def test_outbox_operations_on_rows_that_do_not_exist(database_url: str) -> None:
    result = _run("outbox", "requeue", "--all-failed", DATABASE_URL=database_url)
    assert (result.returncode, result.stdout.strip()) == (0, "requeued 0 row(s)")
    result = _run("outbox", "prune", "--older-than", "7d", DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    assert "pruned 0 SENT row(s)" in result.stdout
    result = _run("outbox", "prune", "--older-than", "soon", DATABASE_URL=database_url)
    assert result.returncode == 2
    assert "invalid duration" in result.stderr
    for args, why in ((("requeue", "--id", "999"), "FAILED"),
                      (("discard", "--id", "999", "--reason", "gone"), "FAILED or unclaimed PENDING")):  # fmt: skip
        result = _run("outbox", *args, DATABASE_URL=database_url)
        assert result.returncode == 2, args
        assert result.stderr.strip().splitlines() == [f"genesis: Outbox row 999 is not {why}"], result.stderr


def test_the_development_agent_checks_its_settings_in_one_line() -> None:
    settings = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "JWT_SECRET": JWT_SECRET}
    result = _run("agent", "--dev", JWT_SECRET=JWT_SECRET)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["genesis: KAFKA_BOOTSTRAP_SERVERS is required but not set"]
    result = _run("agent", "--dev", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["genesis: JWT_SECRET is required but not set"]
    result = _run("agent", "--dev", GENESIS_API_URL="localhost:8000", **settings)
    assert result.returncode == 2
    assert "GENESIS_API_URL" in result.stderr
    assert _run("agent", **settings).returncode == 2  # --dev is the only agent there is
