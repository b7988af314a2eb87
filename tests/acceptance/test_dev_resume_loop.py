"""The concept → feedback → revision loop in `make run`'s shape (issue 25, CONTRACT §9): against `genesis dev` on
its own broker (Tansu) and embedded PostgreSQL, over HTTP only, as a frontend would with the banner's token.

The development agent proposes concepts and parks the flow; the session says it waits for SubmitFeedback; the
user's feedback resumes the handle in the transaction that records it (its event names the handle) and is
answered with a revision of the parked concepts, made from the handle, not from the agent's memory."""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from agents.dev_agent import placeholder_concepts

T = TypeVar("T")
PREFERENCES = {"genre": "noir", "tone": "bleak"}
FEEDBACK = "Fewer dragons, more rain."


class Frontend:
    """What a frontend does: JSON over HTTP with the user's bearer token."""

    def __init__(self, port: int, token: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        assert status == 200, body
        return body

    def events(self, session_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after = 0
        while page := self.get(f"/genesis/sessions/{session_id}/events?after={after}&limit=500")["events"]:
            found += page
            after = page[-1]["sequence"]
        return found


def _banner_value(banner: str, name: str) -> str:
    (line,) = [line.strip() for line in banner.splitlines() if line.strip().startswith(f"export {name}=")]
    return shlex.split(line.removeprefix("export "))[0].split("=", 1)[1]


def _until(what: str, probe: Callable[[], T | None], log: Path, within: float = 90) -> T:
    """Polls `probe` until it answers something, with a deadline (a bound on waiting, not a timed assertion)."""
    deadline = time.monotonic() + within
    while (found := probe()) is None:
        assert time.monotonic() < deadline, (
            f"no {what} within {within}s; genesis dev said:\n" + log.read_text(errors="replace")[-4000:]
        )
        time.sleep(0.2)
    return found


def _one(events: list[dict[str, Any]], event_type: str, correlation_id: str) -> dict[str, Any] | None:
    matching = [e for e in events if e["event_type"] == event_type and e["correlation_id"] == correlation_id]
    assert len(matching) <= 1, matching
    return matching[0] if matching else None


async def _handle_row(database_url: str, handle_id: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT status, correlation_id::text, resumed_by::text, resume_payload, resume_handle, resumed_at"
            " FROM flow_resume_handles WHERE id = $1",
            uuid.UUID(handle_id),
        )
        assert row is not None
        record = dict(row)
        for key in ("resume_payload", "resume_handle"):
            if isinstance(record[key], str):
                record[key] = json.loads(record[key])
        return record
    finally:
        await conn.close()


@pytest.mark.slow
def test_concepts_wait_for_feedback_and_the_feedback_revises_them_under_genesis_dev(
    dev: tuple[subprocess.Popen[bytes], str, int], tmp_path: Path
) -> None:
    _, banner, port = dev
    log = tmp_path / "dev.log"
    front = Frontend(port, _banner_value(banner, "TOKEN"))  # the user token the banner gives (dev-user)

    status, session = front.call("POST", "/genesis/sessions")
    assert status == 201, session
    session_path = f"/genesis/sessions/{session['id']}"
    assert session["waiting"] == []

    # 1. Concepts are asked for; the development agent proposes them and parks the flow for the user's answer.
    status, accepted = front.call(
        "POST",
        f"{session_path}/commands",
        {"command_type": "RequestConceptGeneration", "payload": {"count": 2, "preferences": PREFERENCES}},
    )
    assert status == 202, accepted
    request = accepted["command_id"]
    proposed = _until(
        "ConceptProposed", lambda: _one(front.events(session["id"]), "Genesis.Session.ConceptProposed", request), log
    )
    concepts = proposed["payload"]["result"]["concepts"]
    assert concepts == placeholder_concepts({"count": 2, "preferences": PREFERENCES})
    assert front.get(f"{session_path}/commands/{request}")["status"] == "COMPLETED"
    # Parked before proposing: by the time the proposal is recorded, the session says the next move is the user's.
    (waiting,) = front.get(session_path)["waiting"]
    assert waiting["correlation_id"] == request
    assert waiting["expects"] == ["SubmitFeedback"]
    assert waiting["status"] == "PAUSED"

    # 2. The user's feedback resumes the handle and is answered with a revision of the parked concepts.
    status, accepted = front.call(
        "POST", f"{session_path}/commands", {"command_type": "SubmitFeedback", "payload": {"feedback": FEEDBACK}}
    )
    assert status == 202, accepted
    feedback = accepted["command_id"]
    # The handle is RESUMED in the transaction that records the feedback: nothing open from the 202 on.
    assert front.get(session_path)["waiting"] == []
    revised = _until(
        "ContentRevised", lambda: _one(front.events(session["id"]), "Genesis.Session.ContentRevised", feedback), log
    )
    result = revised["payload"]["result"]
    assert result["concepts"] == [
        {**c, "title": f"{c['title']} (revised)", "revised_for": FEEDBACK} for c in concepts
    ]  # the parked concepts, which only the handle carried to the answer
    assert result["feedback"] == FEEDBACK
    assert result["generator"] == "development"

    events = front.events(session["id"])
    submitted = _one(events, "Genesis.Session.FeedbackSubmitted", feedback)
    assert submitted is not None
    assert submitted["metadata"]["resumes"] == {
        "handle_id": waiting["handle_id"],
        "correlation_id": request,
        "resume_handle": {"concepts": concepts},
    }
    assert [e["event_type"] for e in events if e["correlation_id"] == feedback] == [
        "Genesis.Session.FeedbackSubmitted",
        "Genesis.Session.ContentRevised",
    ]
    assert front.get(f"{session_path}/commands/{feedback}")["status"] == "COMPLETED"
    assert front.get(session_path)["waiting"] == []

    # What a developer sees with psql on the printed DATABASE_URL: the handle RESUMED by that very feedback.
    row = asyncio.run(_handle_row(_banner_value(banner, "DATABASE_URL"), waiting["handle_id"]))
    assert row["status"] == "RESUMED"
    assert (row["correlation_id"], row["resumed_by"]) == (request, feedback)
    assert row["resume_payload"] == {"feedback": FEEDBACK}
    assert row["resume_handle"] == {"concepts": concepts}
    assert row["resumed_at"] is not None
