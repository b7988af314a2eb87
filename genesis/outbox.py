"""Pruning SENT outbox rows in chunks, shared by the relay's sweeper and `genesis outbox prune`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PRUNE_CHUNK = 10_000  # rows per transaction: short transactions, no long lock on the outbox


async def prune_sent(
    db: Any,  # a pool or a connection: anything with fetchval
    older_than: float,
    *,
    stopped: Callable[[], bool] = lambda: False,
    progress: Callable[[int], None] = lambda _total: None,
) -> int:
    """Deletes SENT rows older than `older_than` seconds, a chunk at a time, until none is left
    (or `stopped()`); returns how many. `progress` gets the running total after each chunk."""
    total = 0
    while not stopped():
        count: int = await db.fetchval("SELECT prune_outbox(make_interval(secs => $1), $2)", older_than, PRUNE_CHUNK)
        total += count
        progress(total)
        if count < PRUNE_CHUNK:
            break
    return total
