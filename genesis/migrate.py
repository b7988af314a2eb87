"""Applies sql/migrations in order (once each, under an advisory lock) and re-installs sql/functions."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

# Any constant works; it only has to be the same for every replica of this service.
MIGRATION_LOCK_KEY = 0x67656E65736973  # "genesis"
MIGRATION_NAME = re.compile(r"^\d{4}_[a-z0-9_]+\.sql$")


class MigrationError(Exception):
    pass


class NotMigratedError(MigrationError):
    """The database lacks migrations this release needs: a service or command refuses to start on it."""


def sql_dir() -> Path:
    """sql/ of a source checkout, or the copy a wheel carries inside the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "sql", here.parent / "sql"):
        if (candidate / "migrations").is_dir():
            return candidate
    raise MigrationError(f"no sql/ directory next to {here}")


def migration_files() -> list[Path]:
    files = sorted((sql_dir() / "migrations").glob("*.sql"))
    bad = [f.name for f in files if not MIGRATION_NAME.match(f.name)]
    if bad:
        raise MigrationError(f"migration file names must look like 0001_name.sql: {bad}")
    return files


def function_files() -> list[Path]:
    # A fixed order (by name); plpgsql bodies resolve what they call at run time.
    return sorted((sql_dir() / "functions").glob("*.sql"))


async def require_migrated(conn: asyncpg.Connection[Any] | asyncpg.Pool[Any]) -> None:
    """Start-up check of the API, the relays and the operator's commands: every migration of this release applied
    (else each statement would fail on its own, as a 500 or a traceback)."""
    try:
        applied = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
    except asyncpg.UndefinedTableError:
        applied = set()
    missing = [path.name for path in migration_files() if path.name not in applied]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise NotMigratedError(
            f"the database at DATABASE_URL is not migrated: {missing[0]}{more} not applied (run `genesis migrate`)"
        )


async def migrate(
    dsn: str,
    *,
    kafka_topic: str | None = None,
    cloudevents_source: str | None = None,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Brings the database up to date; safe to run again and from many processes at once.

    Returns the names of the migrations this call applied.
    """
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "genesis-migrate"})
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            defaults = {"kafka_topic": kafka_topic, "cloudevents_source": cloudevents_source}
            return await _migrate_locked(conn, defaults, log)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await conn.close()


async def _migrate_locked(
    conn: asyncpg.Connection[asyncpg.Record], defaults: dict[str, str | None], log: Callable[[str], None]
) -> list[str]:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    applied = {r["name"]: r["checksum"] for r in await conn.fetch("SELECT name, checksum FROM schema_migrations")}
    done: list[str] = []
    for path in migration_files():
        text = path.read_text()
        checksum = hashlib.sha256(text.encode()).hexdigest()
        if path.name in applied:
            if applied[path.name] != checksum:
                raise MigrationError(f"{path.name} was changed after it was applied; add a new migration instead")
            continue
        log(f"applying migration {path.name}")
        async with conn.transaction():
            await conn.execute(text)
            await conn.execute("INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", path.name, checksum)
        done.append(path.name)

    functions = function_files()
    async with conn.transaction():
        for path in functions:
            try:
                await conn.execute(path.read_text())
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"{path.name}: {exc}") from exc
        for name, value in defaults.items():
            if not value:
                continue
            # psql callers of submit_command then write the same topic and ce_source as the API does.
            await conn.execute("SELECT set_config('genesis.migrate_value', $1, true)", value)
            await conn.execute(
                f"""DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET genesis.{name} = %L',
                       current_database(), current_setting('genesis.migrate_value')); END $$"""
            )
    log(f"installed {len(functions)} SQL functions; {len(done)} new migration(s)")
    return done
