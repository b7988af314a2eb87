"""An agent's side of the task routes (CONTRACT §9): progress and completion over HTTP, with bounded retries.

A refusal comes back as the domain error the API named (`errors.CommandNotPending`, `errors.CommandNotFound`,
`errors.Forbidden`, …). What may pass (the API unreachable, 5xx, 429) is tried again with jittered exponential
backoff, `attempts` times in all; then `errors.Unavailable`. Retrying a completion is safe: the same completion
again answers the same and records nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal

import aiohttp

from genesis import errors

log = logging.getLogger("genesis.agent")

Outcome = Literal["COMPLETED", "FAILED"]
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


class TaskClient:
    """Reports on tasks to the Genesis API at `base_url` with a bearer token holding the `genesis:agent` scope.

    `token` is the token, or a function returning a current one (it is called for every request, so a
    long-running agent can renew it)."""

    def __init__(
        self,
        base_url: str,
        token: str | Callable[[], str],
        *,
        attempts: int = 5,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token if callable(token) else (lambda: token)
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> TaskClient:
        self._http = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def progress(self, command_id: str, progress: int, message: str = "") -> dict[str, Any]:
        """How far the task is (0–100); the session's open streams get it as `event: task-progress`."""
        return await self._post(f"/genesis/tasks/{command_id}/progress", {"progress": progress, "message": message})

    async def complete(self, command_id: str, outcome: Outcome, result: dict[str, Any]) -> dict[str, Any]:
        """Settles the task; `{"command_id", "command_status", "event_id"}` of its result event."""
        return await self._post(f"/genesis/tasks/{command_id}/complete", {"outcome": outcome, "result": result})

    async def wait(
        self, command_id: str, resume_handle: dict[str, Any], timeout_seconds: int, expects: list[str]
    ) -> dict[str, Any]:
        """Parks the task's flow until the user's next command of a type in `expects` (CONTRACT §9).

        Answers the handle: `status` PAUSED, or RESUMED when the user's answer came before the pause landed (then
        `resume_payload` and `resumed_by` say which command resumed it, and the flow goes on at once). Retrying is
        safe: the same request again answers the same handle and records nothing."""
        body = {"resume_handle": resume_handle, "timeout_seconds": timeout_seconds, "expects": expects}
        return await self._post(f"/genesis/tasks/{command_id}/wait", body)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._http is None:
            raise RuntimeError("use `async with TaskClient(...)`")
        last = ""
        for attempt in range(self.attempts):
            if attempt:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                await asyncio.sleep(random.uniform(delay / 2, delay))  # jitter keeps many agents apart
            headers = {"Authorization": f"Bearer {self._token()}"}
            try:
                async with self._http.post(self.base_url + path, json=body, headers=headers) as response:
                    answer = await response.json(content_type=None)
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                log.warning("POST %s failed (%s); attempt %d of %d", path, last, attempt + 1, self.attempts)
                continue
            if status in (200, 201) and isinstance(answer, dict):
                return answer
            if status in RETRIED_STATUSES:
                last = f"HTTP {status}: {answer}"
                log.warning("POST %s answered %s; attempt %d of %d", path, status, attempt + 1, self.attempts)
                continue
            raise _refusal(status, answer)
        raise errors.Unavailable(f"POST {path} gave up after {self.attempts} attempts: {last}", api=self.base_url)


def _refusal(status: int, answer: object) -> errors.DomainError:
    if not isinstance(answer, dict) or not isinstance(answer.get("error_code"), str):
        return errors.DomainError(f"unexpected answer {status}: {answer!r}")
    fields = {k: v for k, v in answer.items() if k not in ("error_code", "message")}
    return errors.by_error_code(answer["error_code"])(str(answer.get("message", "")), **fields)
