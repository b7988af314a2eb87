"""A DATABASE_URL the server refuses, as an operator meets it: no such database, no such role, a startup parameter it
does not know, a database nobody migrated. `genesis` says so in one line and exits non-zero, with no traceback, for
the operator's commands and for the services alike."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from tests.conftest import JWT_SECRET, on_server, with_database
from tests.processes import genesis_command


def _run(*args: str, **settings: str) -> tuple[int, list[str]]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR") or k.startswith("COVERAGE_")}
    env = {**keep, "JWT_SECRET": JWT_SECRET, "API_HOST": "127.0.0.1", "API_PORT": "0", **settings}
    done = subprocess.run([genesis_command(), *args], env=env, capture_output=True, text=True, timeout=90, check=False)
    said = (done.stdout + done.stderr).strip().splitlines()
    assert not any("Traceback" in line for line in said), said[-20:]
    return done.returncode, said


@pytest.mark.parametrize("args", [("outbox", "stats"), ("migrate",), ("api",)])
def test_a_database_that_does_not_exist(pg_admin_url: str, args: tuple[str, ...]) -> None:
    code, said = _run(*args, DATABASE_URL=with_database(pg_admin_url, "no_such_database"))
    assert code == 1, said[-20:]
    assert said[-1].startswith("genesis: the database at DATABASE_URL refused: 3D000 InvalidCatalogNameError"), said


def test_a_role_that_does_not_exist(database_url: str) -> None:
    url = database_url.replace("://", "://no_such_role@", 1) if "@" not in database_url else None
    if url is None:  # a URL that names its user already: swap it
        scheme, rest = database_url.split("://", 1)
        url = f"{scheme}://no_such_role@{rest.split('@', 1)[1]}"
    code, said = _run("outbox", "stats", DATABASE_URL=url)
    assert code == 1, said[-20:]
    assert said[-1].startswith("genesis: the database at DATABASE_URL refused: 28000"), said


@pytest.mark.parametrize("args", [("outbox", "stats"), ("api",), ("relay",)])
async def test_a_database_nobody_migrated(pg_admin_url: str, kafka_bootstrap: str, args: tuple[str, ...]) -> None:
    name = f"genesis_unmigrated_{uuid.uuid4().hex[:8]}"
    await on_server(pg_admin_url, f'CREATE DATABASE "{name}"')
    try:
        url = with_database(pg_admin_url, name)
        code, said = _run(*args, DATABASE_URL=url, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, RELAY_METRICS_PORT="0")
    finally:
        await on_server(pg_admin_url, f'DROP DATABASE "{name}"')
    assert code == 2, said[-20:]  # as a setting found wrong: the operator has a step to take
    assert said[-1].startswith("genesis: the database at DATABASE_URL is not migrated: 0001_"), said
    assert said[-1].endswith("not applied (run `genesis migrate`)"), said


def test_an_error_the_database_answers_is_one_line_without_claiming_more(database_url: str) -> None:
    separator = "&" if "?" in database_url else "?"
    code, said = _run("outbox", "stats", DATABASE_URL=f"{database_url}{separator}no_such_parameter=1")
    assert code == 1, said[-20:]
    assert said == ['genesis: the database answered an error: 42704 UndefinedObjectError: unrecognized configuration '
                    'parameter "no_such_parameter"'], said  # fmt: skip
