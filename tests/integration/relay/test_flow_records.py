"""Resume handles (issue 25) on the wire: the Kafka record of a command that resumed a flow carries
metadata.resumes, and the relay's sweeper expires a flow nobody resumed, with its Genesis.Session.Flow.Failed
record."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.relay_harness import Rig, eventually, new_session, submit

HANDLE = {"concepts": [{"title": "A"}]}


async def _park(rig: Rig, command_id: str, seconds: int) -> dict[str, Any]:
    row = await rig.pool.fetchrow(
        "SELECT * FROM park_flow($1::uuid, $2::jsonb, $3, ARRAY['SubmitFeedback'])", command_id, HANDLE, seconds
    )
    assert row is not None
    handle: dict[str, Any] = row["handle"]
    return handle


async def test_the_resuming_commands_record_carries_metadata_resumes(rig: Rig) -> None:
    session_id = await new_session(rig.pool)
    command_id = await submit(rig.pool, session_id, "RequestConceptGeneration", {})
    handle = await _park(rig, command_id, 3600)
    answer = await submit(rig.pool, session_id, "SubmitFeedback", {"feedback": "bolder"})
    await rig.start_relay()
    event_id = str(
        await rig.pool.fetchval("SELECT event_id FROM domain_events WHERE correlation_id = $1", uuid.UUID(answer))
    )
    await rig.consumer.wait_for({event_id}, within=15)
    resumes = rig.consumer.received(event_id).value["metadata"]["resumes"]
    assert resumes == {"handle_id": handle["handle_id"], "correlation_id": command_id, "resume_handle": HANDLE}


@pytest.mark.slow
async def test_the_sweeper_expires_a_flow_nobody_resumed(rig: Rig) -> None:
    session_id = await new_session(rig.pool)
    command_id = await submit(rig.pool, session_id, "RequestConceptGeneration", {})
    handle = await _park(rig, command_id, 1)
    await rig.start_relay(RELAY_SWEEP_INTERVAL=0.5)

    async def expired() -> bool:
        status = await rig.pool.fetchval(
            "SELECT status FROM flow_resume_handles WHERE id = $1", uuid.UUID(handle["handle_id"])
        )
        return str(status) == "EXPIRED"

    await eventually(expired, within=15, what="the flow expired by the sweeper")
    event_id = str(
        await rig.pool.fetchval(
            "SELECT event_id FROM domain_events WHERE event_type = 'Genesis.Session.Flow.Failed' AND aggregate_id = $1",
            uuid.UUID(session_id),
        )
    )
    await rig.consumer.wait_for({event_id}, within=10)
    payload = rig.consumer.received(event_id).value["payload"]
    assert payload == {"correlation_id": command_id, "handle_id": handle["handle_id"], "reason": "EXPIRED"}
