"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from genesis import db
from tests.relay_harness import Rig, open_rig


@pytest.fixture
async def rig(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Rig]:
    """A topic of its own, a pool writing to it, a consumer reading it; relays are started by the test."""
    async with open_rig(database_url, kafka_bootstrap, tmp_path) as r:
        yield r


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    """A small pool of the test's database, as the API opens it (REPEATABLE READ)."""
    p = await db.create_pool(database_url, application_name="test", max_size=2)
    yield p
    await p.close()
