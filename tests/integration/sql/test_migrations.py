"""The migration runner: idempotent, safe under concurrency, strict about history, and the schema it
builds has every constraint, index and trigger the contract names."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from genesis import migrate as migrate_module
from genesis.migrate import MIGRATION_NAME, MigrationError, migrate, migration_files
from tests.conftest import drop_database, on_server, with_database
from tests.integration.tables import TABLES

SCHEMA_DUMP = """
SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
       || ' ' || coalesce(column_default, '')
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint ' || conrelid::regclass || '.' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'function ' || p.oid::regprocedure || ' ' || md5(p.prosrc)
  FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'migration ' || name || ' ' || checksum || ' ' || applied_at FROM schema_migrations
ORDER BY 1
"""


def _quiet(_line: str) -> None:
    pass


async def _dump(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [row[0] for row in await conn.fetch(SCHEMA_DUMP)]
    finally:
        await conn.close()


@pytest.fixture
async def empty_database(pg_admin_url: str) -> AsyncIterator[str]:
    name = f"genesis_empty_{uuid.uuid4().hex[:12]}"
    await on_server(pg_admin_url, f'CREATE DATABASE "{name}" TEMPLATE template0')
    yield with_database(pg_admin_url, name)
    await on_server(pg_admin_url, drop_database(name))


async def test_migrating_again_changes_nothing(database_url: str) -> None:
    before = await _dump(database_url)
    assert any(line.startswith("migration 0001_") for line in before)
    assert await migrate(database_url, kafka_topic="domain-events", log=_quiet) == []
    assert await migrate(database_url, log=_quiet) == []
    assert await _dump(database_url) == before


async def test_five_concurrent_migrators_on_an_empty_database(empty_database: str, template_db: str) -> None:
    results = await asyncio.gather(
        *(migrate(empty_database, kafka_topic="domain-events", log=_quiet) for _ in range(5))
    )
    names = [path.name for path in migration_files()]
    assert sorted(name for applied in results for name in applied) == names  # each applied exactly once
    assert [r for r in results if r] == [names]  # by the one that got the lock first
    conn = await asyncpg.connect(empty_database)
    try:
        rows = await conn.fetch("SELECT name FROM schema_migrations ORDER BY name")
        topic = await conn.fetchval("SELECT current_setting('genesis.kafka_topic', true)")
    finally:
        await conn.close()
    assert [r["name"] for r in rows] == names
    assert topic == "domain-events"  # psql callers write the API's topic

    def schema(lines: list[str]) -> list[str]:
        return [line for line in lines if not line.startswith("migration ")]

    template_url = with_database(empty_database, template_db)
    assert schema(await _dump(empty_database)) == schema(await _dump(template_url))


def test_migration_file_names_follow_the_pattern() -> None:
    files = migration_files()
    assert files, "no migrations found"
    numbers = []
    for path in files:
        assert MIGRATION_NAME.match(path.name), path.name
        numbers.append(int(path.name[:4]))
    assert numbers == list(range(1, len(files) + 1)), "numbers must run 0001, 0002, … without gaps or repeats"
    for path in migrate_module.function_files():
        text = path.read_text()
        assert f"FUNCTION {path.stem}(" in text, f"{path.name} must define {path.stem}"
        assert "CREATE OR REPLACE FUNCTION" in text, path.name


async def test_a_fresh_database_has_what_the_contract_names(empty_database: str) -> None:
    await migrate(empty_database, log=_quiet)
    conn = await asyncpg.connect(empty_database)
    try:
        indexes = {r["indexname"]: r["indexdef"] for r in await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        )}  # fmt: skip
        constraints = {r["conname"]: r["def"] for r in await conn.fetch(
            "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
            "WHERE connamespace = 'public'::regnamespace"
        )}  # fmt: skip
        triggers = {r["tgname"]: r["def"] for r in await conn.fetch(
            "SELECT tgname, pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE NOT tgisinternal"
        )}  # fmt: skip
        tables = {
            r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    finally:
        await conn.close()

    assert {*TABLES, "schema_migrations"} <= tables
    assert indexes["idx_command_inbox_unique_pending_command"] == (
        "CREATE UNIQUE INDEX idx_command_inbox_unique_pending_command ON public.command_inbox "
        "USING btree (session_id, command_type) WHERE (status = ANY (ARRAY['RECEIVED'::text, 'PROCESSING'::text]))"
    )
    assert indexes["idx_command_inbox_idempotency_key"] == (
        "CREATE UNIQUE INDEX idx_command_inbox_idempotency_key ON public.command_inbox "
        "USING btree (session_id, idempotency_key) WHERE (idempotency_key IS NOT NULL)"
    )
    assert constraints["domain_events_aggregate_version_key"] == "UNIQUE (aggregate_id, aggregate_version)"
    assert constraints["domain_events_event_id_key"] == "UNIQUE (event_id)"
    assert constraints["domain_events_event_type_format"].startswith("CHECK ((event_type ~ '^[A-Z]")
    assert (
        "Requested|Created|Proposed|Submitted|Confirmed|Updated|Revised|Completed|Finished|Failed"
        in (constraints["domain_events_event_type_format"])
    )
    assert "BEFORE DELETE OR UPDATE ON public.domain_events FOR EACH ROW" in triggers["domain_events_immutable"]
    assert "BEFORE TRUNCATE ON public.domain_events FOR EACH STATEMENT" in triggers["domain_events_no_truncate"]
    assert indexes["idx_event_outbox_pending"].endswith("USING btree (id) WHERE (status = 'PENDING'::text)")
    assert indexes["idx_event_outbox_unfinished_key"].endswith(
        "USING btree (key, id) WHERE (status = ANY (ARRAY['PENDING'::text, 'FAILED'::text]))"
    )
    assert indexes["idx_event_outbox_sent_at"].endswith("WHERE (status = 'SENT'::text)")
    assert indexes["idx_event_outbox_event"].startswith("CREATE UNIQUE INDEX")


def _copy_sql(tmp_path: Path) -> Path:
    copy = tmp_path / "sql"
    shutil.copytree(migrate_module.sql_dir(), copy)
    return copy


async def test_a_changed_applied_migration_is_refused(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = _copy_sql(tmp_path)
    first = sorted((copy / "migrations").glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an edit after the fact\n")
    monkeypatch.setattr(migrate_module, "sql_dir", lambda: copy)
    before = await _dump(database_url)
    with pytest.raises(MigrationError, match=f"{first.name} was changed after it was applied"):
        await migrate(database_url, log=_quiet)
    assert await _dump(database_url) == before


async def test_a_new_migration_is_applied_once_and_a_bad_name_is_refused(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = _copy_sql(tmp_path)
    number = len(list((copy / "migrations").glob("*.sql"))) + 1
    (copy / "migrations" / f"{number:04d}_test_column.sql").write_text(
        "ALTER TABLE flow_resume_handles ADD COLUMN test_note text;"
    )
    monkeypatch.setattr(migrate_module, "sql_dir", lambda: copy)
    lines: list[str] = []
    assert await migrate(database_url, log=lines.append) == [f"{number:04d}_test_column.sql"]
    assert any("applying migration" in line for line in lines)
    assert await migrate(database_url, log=_quiet) == []

    (copy / "migrations" / "2_BadName.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"2_BadName\.sql"):
        await migrate(database_url, log=_quiet)


async def test_a_broken_function_file_stops_the_run_and_installs_nothing(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = _copy_sql(tmp_path)
    # An earlier file changes a function; the broken later one must take that change back with it.
    changed = copy / "functions" / "genesis_next_stage.sql"
    text = changed.read_text()
    assert "SELECT CASE _stage" in text  # else the replace below changes nothing and the test proves nothing
    changed.write_text(text.replace("SELECT CASE _stage", "SELECT CASE _stage -- changed"))
    (copy / "functions" / "zzz_broken.sql").write_text("CREATE OR REPLACE FUNCTION zzz_broken( RETURNS oops;")
    monkeypatch.setattr(migrate_module, "sql_dir", lambda: copy)
    before = await _dump(database_url)
    with pytest.raises(MigrationError, match=r"^zzz_broken\.sql: "):
        await migrate(database_url, log=_quiet)
    assert await _dump(database_url) == before


def test_sql_dir_is_found_from_a_source_checkout() -> None:
    assert (migrate_module.sql_dir() / "migrations").is_dir()
    assert migrate_module.function_files()
