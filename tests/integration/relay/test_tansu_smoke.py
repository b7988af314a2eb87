"""The local Tansu broker that `make run` uses, whatever broker the rest of the run has: relays
deliver every event in session order, and KAFKA_ENABLE_IDEMPOTENCE=auto turns the idempotent
producer off against it (it lists InitProducerId but grants no producer id)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.relay_harness import Rig, all_sent, events_by_session, eventually, open_rig, whole_story


@pytest.fixture
async def tansu_rig(database_url: str, tansu_bootstrap: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with open_rig(database_url, tansu_bootstrap, tmp_path) as r:
        yield r


async def test_two_relays_deliver_every_event_in_session_order_without_idempotence(tansu_rig: Rig) -> None:
    for _ in range(2):
        await tansu_rig.start_relay()
    await asyncio.gather(*(whole_story(tansu_rig.pool) for _ in range(6)))
    expected = await events_by_session(tansu_rig.pool)
    await tansu_rig.consumer.wait_for({e for events in expected.values() for e in events}, within=30)
    first_seen = tansu_rig.consumer.first_seen()
    for session_id, events in expected.items():
        assert first_seen[session_id] == events, f"session {session_id} out of order"
    await eventually(lambda: all_sent(tansu_rig.pool), within=10, what="every row SENT")
    for relay in tansu_rig.relays:
        said = [x["message"] for x in relay.logs() if x["message"].startswith("idempotent producer")]
        assert said == ["idempotent producer off (auto: the broker grants no producer id)"]


async def test_an_explicit_setting_is_taken_as_given_and_logged(tansu_rig: Rig) -> None:
    relay = await tansu_rig.start_relay(KAFKA_ENABLE_IDEMPOTENCE="false")
    said = [x["message"] for x in relay.logs() if x["message"].startswith("idempotent producer")]
    assert said == ["idempotent producer off (KAFKA_ENABLE_IDEMPOTENCE)"]
