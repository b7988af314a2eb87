"""The API's /metrics after real traffic, and request ids from header to response, event and log line.

The Prometheus registry is process-wide, so the counter tests compare a scrape before with one after.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY as RELAY_REGISTRY
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.metrics import outbox_exposition
from genesis.logs import JsonFormatter
from genesis.settings import Settings
from genesis.telemetry import metric_names
from relay import metrics as relay_metrics
from tests.integration.tables import Auth, Client
from tests.relay_harness import outbox_stats

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: Client) -> Samples:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_commands_are_counted_by_type_and_outcome(client: Client, auth: Auth, session_id: str) -> None:
    url = f"/genesis/sessions/{session_id}/commands"
    concepts = {"command_type": "RequestConceptGeneration", "payload": {}}
    before = await scrape(client)

    first = await client.post(url, json=concepts, headers={**auth(), "Idempotency-Key": "k-1"})
    replay = await client.post(url, json=concepts, headers={**auth(), "Idempotency-Key": "k-1"})
    duplicate = await client.post(url, json=concepts, headers=auth())
    wrong_stage = await client.post(
        url, json={"command_type": "ConfirmStage", "payload": {"stage": "WORLDVIEW"}}, headers=auth()
    )
    unknown = await client.post(url, json={"command_type": "Bogus<script>", "payload": {}}, headers=auth())
    missing = await client.get("/no/such/path")
    statuses = [r.status for r in (first, replay, duplicate, wrong_stage, unknown, missing)]
    assert statuses == [202, 202, 409, 409, 422, 404]
    assert replay.headers["Idempotent-Replayed"] == "true"

    after = await scrape(client)
    commands = "genesis_api_commands_total"
    concept = "RequestConceptGeneration"
    assert moved(before, after, commands, command_type=concept, outcome="accepted", error_code="") == 1
    assert moved(before, after, commands, command_type=concept, outcome="replayed", error_code="") == 1
    assert moved(before, after, commands, command_type=concept, outcome="refused", error_code="DUPLICATE_COMMAND") == 1
    assert moved(before, after, "genesis_api_duplicate_commands_total", command_type=concept) == 1
    assert (
        moved(before, after, commands, command_type="ConfirmStage", outcome="refused", error_code="STAGE_CONFLICT") == 1
    )
    # A type outside the catalogue is never a label value of its own (series would be unbounded).
    assert moved(before, after, commands, command_type="unknown", outcome="refused", error_code="UNKNOWN_COMMAND") == 1
    assert not any("Bogus" in str(labels) for _, labels in after)

    requests = "genesis_api_requests_total"
    assert moved(before, after, requests, route="submit_command", method="POST", status="202") == 2
    assert moved(before, after, requests, route="submit_command", method="POST", status="409") == 2
    assert moved(before, after, requests, route="submit_command", method="POST", status="422") == 1
    assert moved(before, after, requests, route="unmatched", method="GET", status="404") == 1
    assert moved(before, after, requests, route="metrics", method="GET", status="200") == 1  # the first scrape
    assert moved(before, after, "genesis_api_request_seconds_count", route="submit_command") == 5
    assert value(after, "genesis_api_request_seconds_bucket", route="submit_command", le="+Inf") == value(
        after, "genesis_api_request_seconds_count", route="submit_command"
    )


async def test_auth_refusals_are_counted_with_their_status(client: Client, session_id: str) -> None:
    before = await scrape(client)
    response = await client.post(
        f"/genesis/sessions/{session_id}/commands", json={"command_type": "RequestConceptGeneration", "payload": {}}
    )
    assert response.status == 401
    after = await scrape(client)
    assert moved(before, after, "genesis_api_requests_total", route="submit_command", method="POST", status="401") == 1
    refused = {"command_type": "unknown", "outcome": "refused", "error_code": "UNAUTHORIZED"}
    assert moved(before, after, "genesis_api_commands_total", **refused) == 1


@pytest.fixture
async def fast_client(settings: Settings, aiohttp_client: Callable[..., Any]) -> Client:
    """The API with its outbox gauges refreshed every 50 ms, so a test need not wait the default 5 s."""
    client: Client = await aiohttp_client(create_app(dataclasses.replace(settings, metrics_refresh_interval=0.05)))
    return client


async def scrape_until(client: Client, check: Callable[[Samples], bool]) -> Samples:
    """Scrapes until the refresher has caught up with what the test just did."""
    samples = await scrape(client)
    deadline = time.monotonic() + 10
    while not check(samples) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        samples = await scrape(client)
    return samples


async def test_outbox_gauges_agree_with_the_exact_outbox_stats(
    fast_client: Client, auth: Auth, conn: asyncpg.Connection[Any]
) -> None:
    client = fast_client
    session_id = (await (await client.post("/genesis/sessions", headers=auth())).json())["id"]
    other = await client.post("/genesis/sessions", headers=auth())
    assert other.status == 201
    command = await client.post(
        f"/genesis/sessions/{session_id}/commands",
        json={"command_type": "RequestConceptGeneration", "payload": {}},
        headers=auth(),
    )
    assert command.status == 202
    # Two sessions: `session_id` has Created + ConceptGenerationRequested, the other one Created.
    samples = await scrape_until(client, lambda s: value(s, "genesis_outbox_backlog") == 3)
    assert value(samples, "genesis_outbox_backlog") == 3
    assert value(samples, "genesis_outbox_failed") == 0
    assert value(samples, "genesis_outbox_blocked") == 0
    assert value(samples, "genesis_outbox_oldest_pending_age_seconds") > 0

    # The session's first row fails for good: its second row is blocked behind it.
    claimed = await conn.fetch("SELECT id, key, claim_token FROM claim_outbox(10)")
    head = min(r["id"] for r in claimed if r["key"] == session_id)
    await conn.fetchval("SELECT release_outbox($1, $2)", claimed[0]["claim_token"], [r["id"] for r in claimed])
    claimed = await conn.fetch("SELECT id, claim_token FROM claim_outbox(1)")
    assert [r["id"] for r in claimed] == [head]
    await conn.fetchval("SELECT mark_outbox_failed($1, $2, 'KafkaError: boom')", claimed[0]["claim_token"], [head])

    samples = await scrape_until(client, lambda s: value(s, "genesis_outbox_failed") == 1)
    assert value(samples, "genesis_outbox_backlog") == 2
    assert value(samples, "genesis_outbox_failed") == 1
    assert value(samples, "genesis_outbox_blocked") == 1
    assert value(samples, "genesis_outbox_blocked_sessions") == 1
    stats = await outbox_stats(conn)
    assert value(samples, "genesis_outbox_retrying") == stats["retrying"]
    assert value(samples, "genesis_outbox_claimed") == stats["claimed"]


async def test_metrics_are_served_without_outbox_gauges_when_stats_fail(
    fast_client: Client, conn: asyncpg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    before = await scrape_until(fast_client, lambda s: ("genesis_outbox_backlog", frozenset()) in s)
    assert value(before, "genesis_outbox_backlog") == 0
    await conn.execute("DROP FUNCTION outbox_gauges(integer, integer)")  # a fresh database of this test's own
    after = await scrape_until(fast_client, lambda s: ("genesis_outbox_backlog", frozenset()) not in s)
    assert ("genesis_outbox_backlog", frozenset()) not in after
    assert moved(before, after, "genesis_api_outbox_stats_errors_total") >= 1
    assert any("outbox_gauges() failed" in r.getMessage() for r in caplog.records)


def outbox_families(text: str) -> dict[str, tuple[str, float]]:
    """genesis_outbox_* name → (help, value) in a Prometheus text exposition."""
    return {
        family.name: (family.documentation, family.samples[0].value)
        for family in text_string_to_metric_families(text)
        if family.name.startswith("genesis_outbox_")
    }


async def test_relay_and_api_expose_the_outbox_gauges_of_one_table() -> None:
    table = metric_names.OUTBOX_GAUGES
    stats = {gauge.column: float(i) for i, gauge in enumerate(table)}
    relay_metrics.record_stats(stats)
    api = outbox_families(outbox_exposition(stats).decode())
    relay = outbox_families(generate_latest(RELAY_REGISTRY).decode())
    assert api == {gauge.name: (gauge.documentation, stats[gauge.column]) for gauge in table}
    # The relay keeps its five, under the same names, help and columns (claimed and retrying are the API's only).
    assert relay == {name: api[name] for name in (gauge.name for gauge in table if gauge.on_relay)}
    assert len(relay) == 5


# --- request ids -------------------------------------------------------------------------------


def json_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(line) for line in caplog.text.splitlines() if line.startswith("{")]


@pytest.fixture
def json_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog formatting each line when it is emitted, inside the request's context, as production does."""
    caplog.set_level(logging.INFO, logger="genesis")
    caplog.handler.setFormatter(JsonFormatter())
    return caplog


async def test_a_given_request_id_is_echoed_stored_and_logged(
    client: Client, auth: Auth, conn: asyncpg.Connection[Any], json_logs: pytest.LogCaptureFixture
) -> None:
    request_id = f"req-{uuid.uuid4().hex[:8]}.a:1"
    created = await client.post("/genesis/sessions", headers={**auth(), "X-Request-ID": request_id})
    assert created.status == 201
    assert created.headers["X-Request-ID"] == request_id
    session_id = (await created.json())["id"]
    command = await client.post(
        f"/genesis/sessions/{session_id}/commands",
        json={"command_type": "RequestConceptGeneration", "payload": {}},
        headers={**auth(), "X-Request-ID": request_id},
    )
    assert command.status == 202
    assert command.headers["X-Request-ID"] == request_id

    rows = await conn.fetch(
        "SELECT event_type, metadata FROM domain_events WHERE aggregate_id = $1 ORDER BY id", uuid.UUID(session_id)
    )
    assert [r["event_type"] for r in rows] == [
        "Genesis.Session.Created",
        "Genesis.Session.ConceptGenerationRequested",
    ]
    assert all(r["metadata"]["request_id"] == request_id for r in rows)
    assert all(r["metadata"]["source_service"] == "genesis-api" for r in rows)

    lines = {line["message"]: line for line in json_lines(json_logs)}
    assert lines["session created"]["request_id"] == request_id
    accepted = lines["command accepted"]
    assert accepted["request_id"] == request_id
    assert accepted["command_id"] == accepted["correlation_id"] == (await command.json())["command_id"]


@pytest.mark.parametrize("given", [None, "", "has spaces", "x" * 129, "ünïcode"])
async def test_a_missing_or_unusable_request_id_is_replaced_by_a_generated_one(
    client: Client, auth: Auth, conn: asyncpg.Connection[Any], json_logs: pytest.LogCaptureFixture, given: str | None
) -> None:
    headers = auth() if given is None else {**auth(), "X-Request-ID": given}
    created = await client.post("/genesis/sessions", headers=headers)
    assert created.status == 201
    request_id = created.headers["X-Request-ID"]
    assert str(uuid.UUID(request_id)) == request_id
    metadata = await conn.fetchval(
        "SELECT metadata FROM domain_events WHERE aggregate_id = $1", uuid.UUID((await created.json())["id"])
    )
    assert metadata["request_id"] == request_id
    assert [line["request_id"] for line in json_lines(json_logs) if line["message"] == "session created"] == [
        request_id
    ]


async def test_each_request_gets_its_own_id_and_errors_echo_it(client: Client, auth: Auth) -> None:
    ids = set()
    for _ in range(3):
        response = await client.get("/healthz")
        ids.add(response.headers["X-Request-ID"])
    assert len(ids) == 3
    refused = await client.post("/genesis/sessions", headers={"X-Request-ID": "refused-1"})
    assert refused.status == 401
    assert refused.headers["X-Request-ID"] == "refused-1"
    missing = await client.get("/nowhere", headers={"X-Request-ID": "missing-1"})
    assert missing.status == 404
    assert missing.headers["X-Request-ID"] == "missing-1"
