"""Every record of a whole flow, on the real topic, validates against its message in the AsyncAPI document
(genesis/asyncapi.py): headers, key and value. The flow goes through the real routes (a traced request, the
agents' progress and completions, a flow parked and resumed by the feedback, every stage through Finished), and a
command and a parked flow the relay's sweeper fails; then a real `genesis relay` publishes it all to a real broker."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from aiohttp import web

from api.app import create_app
from genesis import asyncapi
from genesis.auth.tokens import AGENT_SCOPE, issue_token
from genesis.settings import Settings
from tests.integration.tables import Auth, Client
from tests.relay_harness import STAGES, Rig, eventually
from tests.topic import Received

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _inline(node: Any, doc: dict[str, Any]) -> Any:
    """The schema with every local $ref replaced by what it points at (jsonschema sees one self-contained schema)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _inline(target, doc)
        return {key: _inline(value, doc) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, doc) for item in node]
    return node


def _check(record: Received, doc: dict[str, Any]) -> None:
    message = doc["components"]["messages"][record.value["event_type"]]
    for schema, instance in (
        (message["headers"], record.headers),
        (message["payload"], record.value),
        (message["bindings"]["kafka"]["key"], record.key),
    ):
        jsonschema.Draft7Validator(_inline(schema, doc)).validate(instance)


async def _flow(client: Client, user: dict[str, str], agent: dict[str, str]) -> None:
    async def send(session: str, command_type: str, payload: dict[str, Any], status: int) -> str:
        body = {"command_type": command_type, "payload": payload}
        response = await client.post(f"/genesis/sessions/{session}/commands", json=body, headers=user)
        assert response.status == status, await response.text()
        return str((await response.json())["command_id"])

    async def settle(command_id: str, outcome: str, result: dict[str, Any]) -> None:
        progress = {"progress": 50, "message": "halfway"}
        response = await client.post(f"/genesis/tasks/{command_id}/progress", json=progress, headers=agent)
        assert response.status == 200, await response.text()
        body = {"outcome": outcome, "result": result}
        response = await client.post(f"/genesis/tasks/{command_id}/complete", json=body, headers=agent)
        assert response.status == 200, await response.text()

    async def wait(command_id: str, timeout_seconds: int) -> None:
        body = {
            "resume_handle": {"step": "feedback"},
            "timeout_seconds": timeout_seconds,
            "expects": ["SubmitFeedback"],
        }
        response = await client.post(f"/genesis/tasks/{command_id}/wait", json=body, headers=agent)
        assert response.status == 201, await response.text()

    traced = {**user, "traceparent": TRACEPARENT, "tracestate": "vendor=1"}
    created = await client.post("/genesis/sessions", headers=traced)
    assert created.status == 201
    session = (await created.json())["id"]
    concepts = await send(session, "RequestConceptGeneration", {"count": 2}, 202)
    await settle(concepts, "COMPLETED", {"concepts": ["a"]})
    await wait(concepts, 3600)  # the next SubmitFeedback resumes it: its record carries metadata.resumes
    await settle(await send(session, "SubmitFeedback", {"feedback": "darker"}, 202), "FAILED", {"error": "no"})
    await settle(await send(session, "SubmitFeedback", {"feedback": "darker", "target": "a"}, 202), "COMPLETED", {})
    for stage in STAGES:
        await send(session, "ConfirmStage", {"stage": stage, "data": {"note": stage}}, 200)

    other = (await (await client.post("/genesis/sessions", headers=user)).json())["id"]
    failed = await send(other, "RequestConceptGeneration", {}, 202)
    await settle(failed, "FAILED", {"error": "model down"})
    await wait(failed, 1)  # nobody resumes it: the sweeper expires it (Genesis.Session.Flow.Failed)
    await send(other, "RequestConceptGeneration", {"preferences": {"genre": "noir"}}, 202)  # left for the sweeper


async def test_every_record_of_a_whole_flow_matches_its_message(
    rig: Rig, settings: Settings, aiohttp_client: Callable[[web.Application], Any], auth: Auth
) -> None:
    client: Client = await aiohttp_client(create_app(dataclasses.replace(settings, kafka_topic=rig.topic)))
    agent = {"Authorization": f"Bearer {issue_token(settings, 'concept-agent', 600, AGENT_SCOPE)}"}
    await _flow(client, auth("alice"), agent)

    # The relay's sweeper fails the command left pending (COMMAND_TIMEOUT), as it would after 15 minutes.
    await rig.start_relay(COMMAND_TIMEOUT=1, RELAY_SWEEP_INTERVAL=1)

    async def swept() -> bool:
        kinds = "SELECT count(DISTINCT event_type) FROM domain_events WHERE event_type IN ($1, $2)"
        return bool(await rig.pool.fetchval(kinds, "Genesis.Session.CommandFailed", "Genesis.Session.Flow.Failed") == 2)

    await eventually(swept, within=20, what="the sweeper's CommandFailed and Flow.Failed")
    event_ids = {str(r["event_id"]) for r in await rig.pool.fetch("SELECT event_id FROM domain_events")}
    await rig.consumer.wait_for(event_ids, within=30)

    doc = asyncapi.document(rig.topic)
    records = [r for r in rig.consumer.records if r.event_id in event_ids]
    assert len(records) == len(event_ids)
    for record in records:
        _check(record, doc)
    # The flow produced every message the document describes, and traced records carry the trace headers.
    assert {r.value["event_type"] for r in records} == set(doc["components"]["messages"])
    assert any("resumes" in r.value["metadata"] for r in records), "no record of a resumed flow was checked"
    created = next(
        r for r in records if r.value["event_type"] == "Genesis.Session.Created" and "traceparent" in r.headers
    )
    assert created.headers["traceparent"].split("-")[1] == TRACEPARENT.split("-")[1]
    assert created.headers["tracestate"] == "vendor=1"

    # And the schemas are strict enough to notice a record that is not what the document says.
    proposed = next(r for r in records if r.value["event_type"] == "Genesis.Session.ConceptProposed")
    tampered = [
        dataclasses.replace(proposed, headers={**proposed.headers, "ce_type": "Genesis.Session.Created"}),
        dataclasses.replace(proposed, value={**proposed.value, "payload": {**proposed.value["payload"], "x": 1}}),
        dataclasses.replace(proposed, value={**proposed.value, "aggregate_version": 0}),
        dataclasses.replace(proposed, key="not-a-session-id"),
    ]
    for record in tampered:
        with pytest.raises(jsonschema.ValidationError):
            _check(record, doc)
