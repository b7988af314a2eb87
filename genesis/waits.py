"""Waiting on events with a way out: what the long-running loops (listener, relay, hub) share."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


async def first_set(*events: asyncio.Event, within: float | None = None) -> None:
    """Returns as soon as any of the events is set, or after `within` seconds when given."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Sleeps up to `seconds`, cut short by `stop`; True when stopping."""
    await first_set(stop, within=seconds)
    return stop.is_set()


async def watch(stop: asyncio.Event, *jobs: Coroutine[Any, Any, None]) -> None:
    """Runs the jobs side by side until `stop`; if one dies, stops the others and raises its error,
    so the owner can say so and stop rather than limp on."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                stop.set()
                raise task.exception()  # type: ignore[misc]
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
