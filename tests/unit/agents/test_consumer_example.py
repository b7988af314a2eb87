"""examples/consumer.py: the dedupe a consumer needs under at-least-once delivery."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from examples.consumer import Consumer, Projection, RecentIds


def event(session: str, version: int, event_type: str = "Genesis.Session.StageConfirmed", **payload: Any) -> bytes:
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "aggregate_id": session,
            "aggregate_version": version,
            "event_type": event_type,
            "payload": payload,
        }
    ).encode()


def headers_of(value: bytes) -> list[tuple[str, bytes]]:
    decoded = json.loads(value)
    return [("event_id", decoded["event_id"].encode()), ("event_type", decoded["event_type"].encode())]


def test_recent_ids_forget_the_oldest_beyond_capacity() -> None:
    recent = RecentIds(capacity=2)
    for event_id in ("a", "b", "a", "c"):
        recent.add(event_id)
    assert "a" in recent
    assert "c" in recent
    assert "b" not in recent  # "a" was used again, so "b" was the oldest
    assert len(recent) == 2


def test_a_redelivered_event_is_applied_once_even_after_the_lru_forgot_it() -> None:
    consumer = Consumer(Projection(), RecentIds(capacity=1))
    session = str(uuid.uuid4())
    first = event(session, 1, "Genesis.Session.Created", stage="CONCEPT_SELECTION")
    second = event(session, 2, next_stage="STORY_CONCEPTION", stage="CONCEPT_SELECTION")
    outcomes = [consumer.handle(headers_of(v), v) for v in (first, second, second, first)]
    # `second` again: the LRU catches it; `first` again: only the stored ids still know it.
    assert outcomes == ["applied", "applied", "duplicate", "duplicate"]
    assert consumer.projection.session(session) == ("STORY_CONCEPTION", 2)
    assert consumer.counts == {"applied": 2, "duplicate": 2, "gap": 0}


def test_the_event_id_header_is_the_dedupe_key() -> None:
    consumer = Consumer(Projection())
    session = str(uuid.uuid4())
    value = event(session, 1, "Genesis.Session.Created")
    assert consumer.handle([("event_id", b"the-id")], value) == "applied"
    # Same header, different body (a re-serialised copy): still the same event.
    assert consumer.handle([("event_id", b"the-id")], event(session, 1, "Genesis.Session.Created")) == "duplicate"


def test_a_missing_version_is_reported_as_a_gap() -> None:
    consumer = Consumer(Projection())
    session = str(uuid.uuid4())
    outcomes = [consumer.handle(headers_of(v), v) for v in (event(session, 1), event(session, 3))]
    assert outcomes == ["applied", "gap"]
    assert consumer.projection.session(session) == (None, 3)


def test_a_failed_effect_does_not_mark_the_event_processed() -> None:
    """The id and the effect commit together: when applying fails, a redelivery applies it."""
    projection = Projection()
    session = str(uuid.uuid4())
    broken = {"aggregate_id": session, "event_type": "Genesis.Session.Created"}  # no aggregate_version
    with pytest.raises(KeyError):
        projection.apply("e-1", broken)
    assert projection.apply("e-1", {**broken, "aggregate_version": 1}) == "applied"
    assert projection.apply("e-1", {**broken, "aggregate_version": 1}) == "duplicate"


def test_processed_ids_survive_a_restart(tmp_path: Any) -> None:
    path = str(tmp_path / "consumer.sqlite3")
    session = str(uuid.uuid4())
    value = event(session, 1, "Genesis.Session.Created")
    assert Consumer(Projection(path)).handle(headers_of(value), value) == "applied"
    assert Consumer(Projection(path)).handle(headers_of(value), value) == "duplicate"
