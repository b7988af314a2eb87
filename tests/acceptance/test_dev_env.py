"""The newcomer's path (CONTRACT §8): after `genesis dev` (what `make run` runs), the exports its banner prints
reach what it started, from a shell that knows nothing else: `genesis outbox stats`, `psql`, a `genesis token`
the API accepts, and `genesis topic tail` on its broker. The same lines are in `<state>/env` while it runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

BARE_PATH = "/usr/bin:/bin"  # a new terminal's PATH, without .venv/bin


def _exports(banner: str) -> list[str]:
    return [line.strip() for line in banner.splitlines() if line.startswith("  export ") and "TOKEN=" not in line]


def _shell(script: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": BARE_PATH, "LANG": "C.UTF-8"}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.slow
def test_the_printed_exports_reach_the_database_the_broker_and_the_api(
    dev: tuple[subprocess.Popen[bytes], str, int], tmp_path: Path
) -> None:
    process, banner, port = dev
    exports = _exports(banner)
    names = [line.split("=", 1)[0].removeprefix("export ") for line in exports]
    assert names == ["PATH", "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPIC", "JWT_SECRET"]
    env_file = tmp_path / "state" / "env"
    assert env_file.read_text().splitlines()[1:] == exports  # `. .dev/env` is the same as pasting them
    assert env_file.stat().st_mode & 0o077 == 0  # it holds the secret

    prelude = "\n".join(exports) + "\n"
    stats = _shell(prelude + "genesis outbox stats", tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["failed"] == 0
    psql = _shell(prelude + 'psql "$DATABASE_URL" -XAtc "SELECT count(*) FROM genesis_command_catalogue()"', tmp_path)
    assert (psql.returncode, psql.stdout.strip()) == (0, "3"), psql.stderr

    token = _shell(prelude + "genesis token --user newcomer", tmp_path)
    assert token.returncode == 0, token.stderr
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/genesis/sessions",
        method="POST",
        headers={"Authorization": f"Bearer {token.stdout.strip()}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201  # the API takes a token signed with the printed JWT_SECRET
        session = json.load(response)["id"]

    with subprocess.Popen(
        ["bash", "-c", prelude + f"exec timeout -s INT 60 genesis topic tail --from-beginning --session {session}"],
        env={"HOME": str(tmp_path), "PATH": BARE_PATH},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as tail:
        assert tail.stdout is not None
        line = tail.stdout.readline()  # the session's first record, once the relay has published it
        tail.send_signal(signal.SIGINT)
    assert f"key={session}" in line, line
    assert "event_type=Genesis.Session.Created" in line, line

    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=60)
    assert not env_file.exists()  # the services it pointed at are gone
