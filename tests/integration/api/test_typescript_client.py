"""The TypeScript client (clients/typescript/, CONTRACT §4) against the live API: `npm ci` from the committed lockfile,
its types regenerated from the served /openapi.json and compared with the committed ones (the client never drifts),
`tsc --noEmit`, and its node:test suite against a real `genesis api` (session, 202, 409 with the duplicate id, the
stream, a stage advance, a reconnect at the token's exp).

Node.js and npm are on CI's machines; where they are missing (a machine with only Python) these tests skip and say
so, as the Apache Kafka tests fall back to Tansu.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from genesis.auth.tokens import issue_token
from genesis.settings import Settings
from tests.api_process import running_api
from tests.conftest import JWT_SECRET

CLIENT = Path(__file__).resolve().parents[3] / "clients" / "typescript"
NODE, NPM = shutil.which("node"), shutil.which("npm")
pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None,
    reason="no node/npm on this machine: the TypeScript client's tests need Node.js 20 and npm (CI has them)",
)
FIRST_TOKEN_TTL = 6  # seconds: the client's stream must outlive its first access token


def _npm(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    assert NPM is not None
    return subprocess.run(
        [NPM, *args], cwd=CLIENT, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def installed() -> None:
    """`npm ci` once for the module: exactly the committed lockfile."""
    result = _npm("ci", "--no-audit", "--no-fund")
    assert result.returncode == 0, result.stderr[-4000:]


async def test_the_committed_types_are_those_of_the_live_document(
    installed: None, database_url: str, tmp_path: Path
) -> None:
    generated = tmp_path / "schema.ts"
    async with running_api(database_url) as api:
        env = {"GENESIS_OPENAPI": f"{api.base_url}/openapi.json", "GENESIS_TYPES_OUT": str(generated)}
        result = await asyncio.to_thread(_npm, "run", "generate", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    committed = (CLIENT / "src" / "schema.ts").read_text()
    assert generated.read_text() == committed, (
        "clients/typescript/src/schema.ts is not what the API's document generates: run `make client-types` "
        "and commit the result"
    )


def test_the_client_typechecks(installed: None) -> None:
    result = _npm("run", "typecheck")
    assert result.returncode == 0, result.stdout + result.stderr


async def test_the_clients_own_tests_pass_against_the_live_api(installed: None, database_url: str) -> None:
    build = await asyncio.to_thread(_npm, "run", "build")
    assert build.returncode == 0, build.stdout + build.stderr
    assert NODE is not None
    async with running_api(database_url, GENESIS_DEV="1", SSE_HEARTBEAT="0.5") as api:
        token = issue_token(Settings(jwt_secret=JWT_SECRET), "ts-client", ttl=FIRST_TOKEN_TTL)
        env = {**os.environ, "GENESIS_API_URL": api.base_url, "GENESIS_TOKEN": token}
        tests = await asyncio.create_subprocess_exec(
            NODE, "--test", "dist/test/", cwd=CLIENT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(tests.communicate(), timeout=120)
    report = output.decode()
    assert tests.returncode == 0, report[-6000:]
    assert "# pass 2" in report, report[-3000:]  # both ran: none skipped for want of GENESIS_API_URL
    assert "# fail 0" in report, report[-3000:]
