"""Fixtures shared by the relay tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.relay_harness import Rig, open_rig


@pytest.fixture
async def rig(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Rig]:
    """A topic of its own, a pool writing to it, a consumer reading it; relays are started by the test."""
    async with open_rig(database_url, kafka_bootstrap, tmp_path) as r:
        yield r
