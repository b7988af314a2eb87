"""A bounded queue for one event stream, lighter than asyncio.Queue.

asyncio.Queue keeps three deques and an Event (four more deques' worth of blocks, some 3 KiB) per instance; with
10,000 open streams that is 30 MiB for queues that are nearly always empty. This one keeps a list and at most one
waiter: a stream has exactly one reader (its handler) and one writer (the hub). Same surface as the part of
asyncio.Queue the hub and the stream use: `put_nowait` (raising asyncio.QueueFull) and `get`.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class FrameQueue(Generic[T]):
    __slots__ = ("_items", "_limit", "_waiter")

    def __init__(self, limit: int) -> None:
        self._items: list[T] = []  # short (≤ limit, usually 0 or 1): pop(0) costs nothing worth a deque
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: T) -> None:
        if len(self._items) >= self._limit:
            raise asyncio.QueueFull
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> T:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)
