"""Upgrading a database whose functions have the signatures before the trace-context parameters: one
`genesis migrate` leaves one function of each name, and callers naming only the old arguments still work."""

from __future__ import annotations

import asyncpg

from genesis.migrate import migrate

OLD_SIGNATURES = {
    "genesis_append_event": "uuid, text, jsonb, uuid, text, text",
    "submit_command": "uuid, text, jsonb, text, text, text",
    "create_session": "text, text",
    "mark_outbox_sent": "uuid, bigint[]",
}


async def test_migrate_replaces_the_old_signatures(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for name, args in OLD_SIGNATURES.items():
            # Stand-ins for the functions as an older release installed them.
            await conn.execute(f"CREATE FUNCTION {name}({args}) RETURNS void LANGUAGE sql AS 'SELECT'")
        await migrate(database_url, log=lambda _line: None)
        counts = await conn.fetch(
            "SELECT proname, count(*) AS n FROM pg_proc WHERE proname = ANY($1::text[]) GROUP BY proname",
            list(OLD_SIGNATURES),
        )
        assert {r["proname"]: r["n"] for r in counts} == dict.fromkeys(OLD_SIGNATURES, 1)
        session = await conn.fetchval("SELECT create_session('upgrader', 'req-1')")  # the old call, unambiguous
        assert session is not None
    finally:
        await conn.close()
