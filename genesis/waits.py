"""Waiting on events with a way out: what the long-running loops (listener, relay, hub) share."""

from __future__ import annotations

import asyncio
import contextlib


async def first_set(*events: asyncio.Event) -> None:
    """Returns as soon as any of the events is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Sleeps up to `seconds`, cut short by `stop`; True when stopping."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()
