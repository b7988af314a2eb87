"""The shell environment that reaches what `genesis dev` started, for `genesis` and `psql` in another terminal.

The embedded database is a unix socket under the state directory and the broker's port changes each run, so
`genesis dev` prints the exports in its banner and keeps them in `<state>/env` while it runs (`. .dev/env`).
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import sys
from pathlib import Path

from genesis.settings import Settings

ENV_FILE = "env"


def exports(settings: Settings, *, commands_dir: Path | None, psql_dir: Path | None) -> list[str]:
    """`export` lines: `genesis` (in `commands_dir`) on PATH, and `psql_dir` after everything else on it (a psql
    for a machine without one), then the settings the CLI needs to reach the same database, broker and secret."""
    path = ":".join(
        [*([shlex.quote(str(commands_dir))] if commands_dir else []), "$PATH"]
        + ([shlex.quote(str(psql_dir))] if psql_dir else [])
    )
    values = {
        "DATABASE_URL": settings.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC": settings.kafka_topic,
        "JWT_SECRET": settings.jwt_secret,
    }
    return [f"export PATH={path}"] + [f"export {name}={shlex.quote(v)}" for name, v in values.items() if v]


def announce(settings: Settings, state_dir: Path) -> str:
    """Writes `<state>/env` (only its owner may read it: it holds the secret) and returns the banner's lines."""
    lines = exports(settings, commands_dir=_commands_dir(), psql_dir=_psql_dir())
    env_file = (state_dir / ENV_FILE).absolute()
    env_file.touch(mode=0o600)
    env_file.chmod(0o600)
    env_file.write_text(
        "# Written by `genesis dev` while it runs: . this file to reach its services.\n" + "\n".join(lines) + "\n"
    )
    listing = "\n".join(f"  {line}" for line in lines)
    return (
        f"To reach these from another terminal with genesis and psql: . {shlex.quote(str(env_file))}  (or paste)\n"
        f"{listing}\n"
        '  genesis outbox stats;  genesis topic tail;  psql "$DATABASE_URL"\n'
    )


def forget(state_dir: Path) -> None:
    """The services are gone: so are the exports that pointed at them."""
    with contextlib.suppress(FileNotFoundError):
        (state_dir / ENV_FILE).unlink()


def _commands_dir() -> Path | None:
    # The virtualenv's bin/ (not resolved: its python is a symlink out of it), when `genesis` is there.
    here = Path(sys.executable).absolute().parent
    return here if (here / "genesis").exists() else None


def _psql_dir() -> Path | None:
    if shutil.which("psql"):
        return None
    try:
        from genesis.local.services import embedded_bin_dir

        return embedded_bin_dir()
    except ImportError:  # the `local` extra is not installed: no embedded PostgreSQL, no psql of its own
        return None
