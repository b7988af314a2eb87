"""How many event streams this process holds open: per user (SSE_MAX_STREAMS_PER_USER) and in all (SSE_MAX_STREAMS).

An open stream costs a connection, a queue and a replay query; without a cap one user (or one buggy tab
opening streams in a loop) could take them all. The counts are per process: N API replicas admit N times as many.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from genesis import errors

RETRY_AFTER = 5  # seconds: streams end when their clients leave, so a slot is usually free again soon


class StreamLimits:
    def __init__(self, *, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self._open: dict[str, int] = {}
        self.count = 0

    def open_for(self, user_id: str) -> int:
        return self._open.get(user_id, 0)

    @contextlib.contextmanager
    def admit(self, user_id: str) -> Iterator[None]:
        """Holds one stream slot of `user_id` for as long as the block runs; refuses when none is free."""
        if self.count >= self.total:
            raise errors.Busy(
                "This API process holds as many event streams as it may; try again", retry_after=RETRY_AFTER
            )
        held = self._open.get(user_id, 0)
        if held >= self.per_user:
            raise errors.TooManyStreams(
                f"At most {self.per_user} open event streams per user", limit=self.per_user, retry_after=RETRY_AFTER
            )
        self._open[user_id] = held + 1
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1
            left = self._open[user_id] - 1
            if left:
                self._open[user_id] = left
            else:
                del self._open[user_id]
