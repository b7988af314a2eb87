"""What reaches Kafka speaks the standards (CONTRACT §6): records read back with the CloudEvents SDK's
Kafka binding, and where each record landed as the outbox, `genesis outbox show` and the events API
tell it. A real `genesis relay`, a real broker and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime

import jsonschema
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from cloudevents.kafka import KafkaMessage, from_binary

from api import openapi
from genesis import db
from tests.relay_harness import Rig, all_sent, eventually, new_session, submit

CE_SOURCE = "/tests/interop"


async def test_records_are_cloudevents_in_the_kafka_binary_mode(rig: Rig) -> None:
    # Written under the database's default ce_source; the relay sends its own CLOUDEVENTS_SOURCE.
    pool = await db.create_pool(rig.database_url, application_name="ce-test", max_size=1)  # fmt: skip
    try:
        session_id = await new_session(pool)
        await submit(pool, session_id, "RequestConceptGeneration", {"count": 2})
        events = await pool.fetch(
            "SELECT e.*, genesis_event_json(e) AS json FROM domain_events e WHERE aggregate_id = $1 ORDER BY id",
            uuid.UUID(session_id),
        )
    finally:
        await pool.close()
    await rig.start_relay(CLOUDEVENTS_SOURCE=CE_SOURCE)
    await rig.consumer.wait_for({str(e["event_id"]) for e in events}, within=10)

    for event in events:
        record = rig.consumer.received(str(event["event_id"]))
        message = KafkaMessage(
            headers={k: v.encode() for k, v in record.headers.items()},
            key=record.key.encode(),
            value=json.dumps(record.value).encode(),
        )
        cloud = from_binary(message, data_unmarshaller=json.loads)
        assert cloud["specversion"] == "1.0"
        assert cloud["id"] == str(event["event_id"])
        assert cloud["type"] == event["event_type"]
        assert cloud["source"] == CE_SOURCE
        assert cloud["subject"] == session_id
        assert datetime.fromisoformat(cloud["time"]) == event["created_at"]  # RFC 3339, the same instant
        assert cloud["time"].endswith("Z")
        assert cloud.get_data() == event["json"]  # the value is the event JSON, unchanged
        assert record.headers["content-type"] == "application/json"
        # The four headers of before are still there.
        assert record.headers["event_id"] == str(event["event_id"])
        assert record.headers["correlation_id"] == str(event["correlation_id"])


async def test_a_sent_row_says_where_it_landed_in_the_cli_and_the_events_api(
    rig: Rig, client: TestClient[Request, Application], auth: Callable[[str], dict[str, str]]
) -> None:
    session_id = await new_session(rig.pool, user="alice")
    await submit(rig.pool, session_id, "RequestConceptGeneration", {}, user="alice")
    before = await client.get(f"/genesis/sessions/{session_id}/events", headers=auth("alice"))
    assert [e["kafka"] for e in (await before.json())["events"]] == [None, None]  # not yet on Kafka

    await rig.start_relay()
    events = [str(r["event_id"]) for r in await rig.pool.fetch("SELECT event_id FROM event_outbox ORDER BY id")]
    await rig.consumer.wait_for(set(events), within=10)
    await eventually(lambda: all_sent(rig.pool), within=10, what="every row SENT")

    page = await (await client.get(f"/genesis/sessions/{session_id}/events", headers=auth("alice"))).json()
    for event in page["events"]:
        record = rig.consumer.received(event["event_id"])
        assert event["kafka"] == {"partition": record.partition, "offset": record.offset}
        jsonschema.validate(event["kafka"], openapi.document()["components"]["schemas"]["Event"]["properties"]["kafka"])
        code, out, err = await rig.cli("outbox", "show", "--event-id", event["event_id"])
        assert code == 0, err
        shown = json.loads(out)
        assert (shown["status"], shown["kafka_partition"], shown["kafka_offset"]) == (
            "SENT",
            record.partition,
            record.offset,
        )
        assert shown["landed"] == f"{rig.topic} partition {record.partition}, offset {record.offset}"

    code, _, err = await rig.cli("outbox", "show", "--event-id", str(uuid.uuid4()))
    assert code == 1
    assert "no outbox row" in err
