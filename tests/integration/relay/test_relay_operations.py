"""Running the relay: its sweeper (pruning, stale commands), its /metrics and /readyz, and the operator's
`genesis outbox stats|requeue|discard|prune`, each run as a subprocess."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.relay_harness import (
    Pool,
    Rig,
    bulk_backlog,
    events_by_session,
    eventually,
    new_session,
    submit,
)


async def count(pool: Pool, sql: str, *args: object) -> int:
    return int(await pool.fetchval(sql, *args))


@pytest.mark.slow
async def test_the_sweeper_prunes_old_sent_rows_and_fails_stale_commands(rig: Rig) -> None:
    session_id = await new_session(rig.pool)
    command_id = await submit(rig.pool, session_id, "RequestConceptGeneration", {})
    await rig.start_relay(RELAY_SWEEP_INTERVAL=0.5, RELAY_RETENTION=1, COMMAND_TIMEOUT=1)

    async def expired() -> bool:
        status = await rig.pool.fetchval("SELECT status FROM command_inbox WHERE id = $1", uuid.UUID(command_id))
        return str(status) == "FAILED"

    await eventually(expired, within=15, what="the stale command failed by the sweeper")
    events = await rig.pool.fetch(
        "SELECT event_id::text, event_type FROM domain_events WHERE aggregate_id = $1 ORDER BY aggregate_version",
        uuid.UUID(session_id),
    )
    assert events[-1]["event_type"] == "Genesis.Session.CommandFailed"
    await rig.consumer.wait_for({e["event_id"] for e in events}, within=10)  # published like any other

    async def pruned() -> bool:
        return await count(rig.pool, "SELECT count(*) FROM event_outbox") == 0

    await eventually(pruned, within=15, what="SENT rows older than the retention pruned")
    assert await count(rig.pool, "SELECT count(*) FROM domain_events") == len(events)  # the events stay


async def test_metrics_count_what_was_published_and_show_the_outbox(rig: Rig) -> None:
    relay = await rig.start_relay()
    before = await relay.metric("genesis_relay_published_total")
    await bulk_backlog(rig.pool, sessions=5, rounds=2)
    every = await events_by_session(rig.pool)
    await rig.consumer.wait_for({e for events in every.values() for e in events}, within=10)

    async def counted() -> bool:
        return await relay.metric("genesis_relay_published_total") - before == 10

    await eventually(counted, within=5, what="published_total moved by 10")
    _, text = await relay.http("/metrics")
    for name in (
        "genesis_relay_retried_total",
        "genesis_relay_failed_total",
        "genesis_relay_publish_seconds_bucket",
        "genesis_outbox_backlog",
        "genesis_outbox_oldest_pending_age_seconds",
        "genesis_relay_broker_up 1.0",
        "genesis_relay_listener_up 1.0",
    ):
        assert name in text
    status, body = await relay.http("/readyz")
    assert (status, json.loads(body)) == (200, {"status": "ok", "checks": {"broker": True, "listener": True}})
    assert (await relay.http("/healthz"))[0] == 200


async def _failed_row(pool: Pool) -> int:
    """A row a relay gave up on, made the way the relay does it (claim, then mark_outbox_failed)."""
    token = await pool.fetchval("SELECT claim_token FROM claim_outbox(1)")
    (row_id,) = [r["id"] for r in await pool.fetch("SELECT id FROM outbox_leases WHERE claim_token = $1", token)]
    await pool.fetchval("SELECT mark_outbox_failed($1, $2, 'KafkaTimeoutError: broker gone')", token, [row_id])
    return int(row_id)


async def test_outbox_commands_for_operators(rig: Rig) -> None:
    await bulk_backlog(rig.pool, sessions=3, rounds=2)
    failed = await _failed_row(rig.pool)

    code, out, _ = await rig.cli("outbox", "stats")
    assert code == 0
    stats = json.loads(out)
    assert (stats["pending"], stats["failed"], stats["blocked"], stats["blocked_sessions"]) == (5, 1, 1, 1)
    assert stats["backlog"] == stats["pending"]

    code, out, _ = await rig.cli("outbox", "requeue", "--id", str(failed))
    assert (code, out.strip()) == (0, "requeued 1 row(s)")
    assert await rig.pool.fetchval("SELECT status FROM event_outbox WHERE id = $1", failed) == "PENDING"
    code, _, err = await rig.cli("outbox", "requeue", "--id", str(failed))  # no longer FAILED
    assert code == 2
    assert f"Outbox row {failed} is not FAILED" in err

    failed = await _failed_row(rig.pool)
    code, _, err = await rig.cli("outbox", "discard", "--id", str(failed), "--reason", " ")
    assert code == 2
    assert "reason" in err
    code, out, _ = await rig.cli("outbox", "discard", "--id", str(failed), "--reason", "replayed by hand")
    assert (code, out.strip()) == (0, f"discarded row {failed}")

    await rig.pool.execute(
        "UPDATE event_outbox SET status = 'SENT', sent_at = now() - interval '3 days' WHERE status = 'PENDING'"
    )
    code, out, _ = await rig.cli("outbox", "prune", "--older-than", "2d")
    assert (code, out.strip()) == (0, "pruned 5 SENT row(s) older than 172800s")
    assert await count(rig.pool, "SELECT count(*) FROM event_outbox") == 1  # the DISCARDED row stays
    code, _, err = await rig.cli("outbox", "prune", "--older-than", "soon")
    assert code == 2
    assert "invalid duration" in err


async def test_a_poll_only_relay_exports_no_listener_gauge_for_alerts_to_misread(rig: Rig) -> None:
    relay = await rig.start_relay(RELAY_LISTEN="false")
    _, text = await relay.http("/metrics")
    assert "genesis_relay_broker_up 1.0" in text
    assert "genesis_relay_listener_up" not in text  # a 0 here would fire GenesisRelayListenerDown forever
