"""The command catalogue read from its SQL source (what the AsyncAPI document is generated from) is the one
the database runs: genesis_command_catalogue() returns the same rows, in the same order."""

from __future__ import annotations

from typing import Any

import asyncpg

from genesis.sql_catalogue import command_catalogue


async def test_the_source_file_and_the_function_agree(conn: asyncpg.Connection[Any]) -> None:
    rows = [dict(r) for r in await conn.fetch("SELECT * FROM genesis_command_catalogue()")]
    assert rows == list(command_catalogue())
