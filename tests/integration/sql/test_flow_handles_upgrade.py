"""Migration 0008 upgrades a database that holds old-shape flow_resume_handles rows in place: WAITING -> PAUSED
(still the flow's one open handle), CANCELLED -> EXPIRED, the old payload kept as the resume_handle."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from genesis import migrate as migrate_module
from genesis.migrate import migrate
from tests.conftest import drop_database, on_server, with_database


def _quiet(_line: str) -> None:
    pass


@pytest.fixture
async def empty_database(pg_admin_url: str) -> AsyncIterator[str]:
    name = f"genesis_upgrade_{uuid.uuid4().hex[:12]}"
    await on_server(pg_admin_url, f'CREATE DATABASE "{name}" TEMPLATE template0')
    yield with_database(pg_admin_url, name)
    await on_server(pg_admin_url, drop_database(name))


async def test_old_rows_are_mapped_to_the_new_statuses(
    empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The schema as it was before 0008 (tables only: the functions of today need the new shape).
    old = tmp_path / "sql"
    (old / "functions").mkdir(parents=True)
    shutil.copytree(migrate_module.sql_dir() / "migrations", old / "migrations")
    (old / "migrations" / "0008_flow_resume_handles.sql").unlink()
    for later in (old / "migrations").glob("00[0-9][0-9]_*.sql"):
        if later.name > "0008":
            later.unlink()
    monkeypatch.setattr(migrate_module, "sql_dir", lambda: old)
    await migrate(empty_database, log=_quiet)

    conn = await asyncpg.connect(empty_database)
    try:
        session = await conn.fetchval("INSERT INTO genesis_sessions (user_id) VALUES ('alice') RETURNING id")
        flows = {status: uuid.uuid4() for status in ("WAITING", "RESUMED", "EXPIRED", "CANCELLED")}
        for status, flow in flows.items():
            await conn.execute(
                """INSERT INTO flow_resume_handles (correlation_id, session_id, status, payload, expires_at,
                                                    created_at)
                   VALUES ($1, $2, $3, jsonb_build_object('was', $3::text), now() + interval '1 hour',
                           now() - interval '1 hour')""",
                flow,
                session,
                status,
            )
        monkeypatch.undo()
        await migrate(empty_database, log=_quiet)
        rows = {
            r["correlation_id"]: r
            for r in await conn.fetch("SELECT * FROM flow_resume_handles WHERE session_id = $1", session)
        }
        assert {status: rows[flow]["status"] for status, flow in flows.items()} == {
            "WAITING": "PAUSED",
            "RESUMED": "RESUMED",
            "EXPIRED": "EXPIRED",
            "CANCELLED": "EXPIRED",
        }
        assert rows[flows["WAITING"]]["resume_handle"] == '{"was": "WAITING"}'
        assert rows[flows["WAITING"]]["timeout_seconds"] == 7200
        # The upgraded WAITING row is the flow's open handle: a second park of that flow is refused.
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                """INSERT INTO flow_resume_handles (correlation_id, session_id, status, timeout_seconds,
                                                    expires_at) VALUES ($1, $2, 'PAUSED', 60, now())""",
                flows["WAITING"],
                session,
            )
        waiting = await conn.fetchval(
            "SELECT genesis_session_json(s)->'waiting' FROM genesis_sessions s WHERE s.id = $1", session
        )
        assert '"PAUSED"' in waiting
        assert str(flows["WAITING"]) in waiting
    finally:
        await conn.close()
