"""What the API's PostgreSQL backends wait on during a figure: pg_stat_activity sampled every 20 ms
from a thread of its own. `Lock:object` is NOTIFY's commit lock (PostgreSQL's PreCommit_Notify takes
a lock on "database 0" and holds it until the commit is flushed), `IO:WalSync` the flush itself."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Iterator

import asyncpg

QUERY = """SELECT coalesce(wait_event_type || ':' || wait_event, 'on CPU') FROM pg_stat_activity
            WHERE application_name = $1 AND state = 'active'"""


@contextlib.contextmanager
def sampled(dsn: str, application_name: str = "genesis-api") -> Iterator[collections.Counter[str]]:
    """Counts of each wait (or 'on CPU') over the samples taken while the block runs."""
    counts: collections.Counter[str] = collections.Counter()
    stop = threading.Event()

    async def sample() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            while not stop.is_set():
                counts.update(r[0] for r in await conn.fetch(QUERY, application_name))
                await asyncio.sleep(0.02)
        finally:
            await conn.close()

    thread = threading.Thread(target=asyncio.run, args=(sample(),), daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join(10)


def summary(counts: collections.Counter[str], top: int = 3) -> str:
    """'Lock:object 71 %, IO:WalSync 13 %, on CPU 9 %': the share of backend samples per wait."""
    total = sum(counts.values()) or 1
    return ", ".join(f"{what} {100 * n / total:.0f} %" for what, n in counts.most_common(top))
