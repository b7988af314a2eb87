"""Trace context end to end (CONTRACT §6): `genesis api` and `genesis relay` as operators run them,
exporting over OTLP/HTTP to a receiver inside the test; the record on the topic carries the trace."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from opentelemetry import propagate, trace

from genesis.auth.tokens import issue_token
from genesis.local.services import free_port
from genesis.settings import Settings
from tests.conftest import JWT_SECRET
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.processes import genesis_command
from tests.relay_harness import Rig, eventually

USER = "tracer"


def _otel(receiver: OtlpReceiver) -> dict[str, str]:
    # A short batch delay, so the spans arrive while the test waits (the SDK's default is 5 s).
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}


@contextlib.asynccontextmanager
async def _api(rig: Rig, tmp_path: Path, **settings: str) -> AsyncIterator[str]:
    port = free_port()
    env = rig.env(JWT_SECRET=JWT_SECRET, API_PORT=port, **settings)
    with (tmp_path / "api.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            genesis_command(), "api", env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log
        )
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:

                async def up() -> bool:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(f"{base}/healthz") as response:
                            return response.status == 200
                    return False

                await eventually(up, within=30, what="the API answers")
            yield base
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 15)


def _traceparent(trace_id: str, span_id: str) -> str:
    carrier: dict[str, str] = {}
    context = trace.SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True,
                                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))  # fmt: skip
    propagate.inject(carrier, context=trace.set_span_in_context(trace.NonRecordingSpan(context)))
    return carrier["traceparent"]


def _trace_id(traceparent: str) -> str:
    context = trace.get_current_span(propagate.extract({"traceparent": traceparent})).get_span_context()
    return trace.format_trace_id(context.trace_id)


@pytest.mark.slow
async def test_one_command_is_one_trace_from_the_request_to_the_record(rig: Rig, tmp_path: Path) -> None:
    token = issue_token(Settings(jwt_secret=JWT_SECRET), USER)
    bearer = {"Authorization": f"Bearer {token}"}
    excluded = {"OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS": "healthz,readyz"}  # _api polls /healthz
    async with OtlpReceiver().running() as receiver, _api(rig, tmp_path, **_otel(receiver), **excluded) as base:
        await rig.start_relay(ready=True, **_otel(receiver))
        async with aiohttp.ClientSession(headers=bearer) as http:
            # No trace came: the API starts one, and the record carries it.
            async with http.post(f"{base}/genesis/sessions") as response:
                assert response.status == 201
                session_id = (await response.json())["id"]
            # The caller's trace: everything of this command is in it.
            trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
            sent = {"traceparent": _traceparent(trace_id, caller_span), "tracestate": "genesis=test"}
            command = {"command_type": "RequestConceptGeneration", "payload": {}}
            async with http.post(f"{base}/genesis/sessions/{session_id}/commands", json=command, headers=sent) as r:
                assert r.status == 202
                command_id = (await r.json())["command_id"]

        (created_id,) = [str(r["event_id"]) for r in await rig.pool.fetch(
            "SELECT event_id FROM domain_events WHERE aggregate_id = $1 AND event_type = 'Genesis.Session.Created'",
            uuid.UUID(session_id))]  # fmt: skip
        event_id = str(await rig.pool.fetchval("SELECT event_id FROM domain_events WHERE correlation_id = $1",
                                               uuid.UUID(command_id)))  # fmt: skip
        await rig.consumer.wait_for({created_id, event_id}, within=15)
        record = rig.consumer.received(event_id)
        assert _trace_id(record.headers["traceparent"]) == trace_id
        assert record.headers["tracestate"] == "genesis=test"
        metadata = await rig.pool.fetchval("SELECT metadata FROM domain_events WHERE event_id = $1",
                                           uuid.UUID(event_id))  # fmt: skip
        assert metadata["traceparent"] == record.headers["traceparent"]

        def spans_named(name: str, of: str) -> list[ReceivedSpan]:
            return [s for s in receiver.of_trace(of) if s.name == name]

        send = f"send {rig.topic}"
        server_name = "POST /genesis/sessions/{session_id}/commands"

        async def all_arrived() -> bool:
            return bool(spans_named(server_name, trace_id) and spans_named(send, trace_id))

        await eventually(all_arrived, within=20, what="the API's and the relay's spans")
        (server,) = spans_named(server_name, trace_id)
        assert (server.kind, server.parent_span_id, server.service) == ("SERVER", caller_span, "genesis-api")
        # The stored context is the API's server span: the record's traceparent names it.
        assert record.headers["traceparent"].split("-")[2] == server.span_id
        assert server.attributes["http.request.method"] == "POST"
        assert server.attributes["http.route"] == "/genesis/sessions/{session_id}/commands"
        assert server.attributes["url.path"] == f"/genesis/sessions/{session_id}/commands"
        assert server.attributes["http.response.status_code"] == 202
        # One span per request by default: no CLIENT span for its SQL call (TRACE_SQL_SPANS, the next test).
        assert not [s for s in receiver.of_trace(trace_id) if s.kind == "CLIENT"]
        (producer,) = spans_named(send, trace_id)
        assert (producer.kind, producer.service, producer.parent_span_id) == (
            "PRODUCER",
            "genesis-relay",
            server.span_id,
        )
        assert producer.links == ((trace_id, server.span_id),)
        assert producer.attributes["messaging.system"] == "kafka"
        assert producer.attributes["messaging.destination.name"] == rig.topic
        assert producer.attributes["messaging.destination.partition.id"] == str(record.partition)
        assert producer.attributes["messaging.kafka.offset"] == record.offset
        assert producer.attributes["messaging.message.id"] == event_id
        assert producer.attributes["messaging.kafka.message.key"] == session_id
        assert producer.attributes["messaging.batch.message_count"] >= 1

        # The session's first event is in the trace the API started for its request.
        started = _trace_id(rig.consumer.received(created_id).headers["traceparent"])
        assert started != "0" * 32

        async def started_arrived() -> bool:
            names = {s.name for s in receiver.of_trace(started)}
            return {"POST /genesis/sessions", send} <= names

        await eventually(started_arrived, within=20, what="the spans of the trace the API started")
        assert not [s for s in receiver.spans if s.name == "GET /healthz"], "excluded by the setting"


async def test_with_sql_spans_the_sql_call_is_a_client_span_of_the_request(rig: Rig, tmp_path: Path) -> None:
    token = issue_token(Settings(jwt_secret=JWT_SECRET), USER)
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    sent = {"traceparent": _traceparent(trace_id, caller_span), "Authorization": f"Bearer {token}"}
    command = {"command_type": "RequestConceptGeneration", "payload": {}}
    async with (
        OtlpReceiver().running() as receiver,
        _api(rig, tmp_path, **_otel(receiver), TRACE_SQL_SPANS="true") as base,
        aiohttp.ClientSession(headers=sent) as http,
    ):
        async with http.post(f"{base}/genesis/sessions") as r:
            session_id = (await r.json())["id"]
        async with http.post(f"{base}/genesis/sessions/{session_id}/commands", json=command) as r:
            assert r.status == 202

        async def both_arrived() -> bool:
            return len([s for s in receiver.of_trace(trace_id) if s.kind == "CLIENT"]) == 2

        await eventually(both_arrived, within=20, what="the CLIENT spans of both SQL calls")
    server = next(s for s in receiver.of_trace(trace_id) if s.name.endswith("/commands"))
    (database,) = [s for s in receiver.of_trace(trace_id) if s.kind == "CLIENT" and s.parent_span_id == server.span_id]
    # A command alone is a batch of one (group commit): its batch call is its own request's child.
    assert (database.name, database.service) == ("SELECT submit_commands", "genesis-api")
    assert database.attributes["db.system.name"] == "postgresql"
    assert database.attributes["db.stored_procedure.name"] == "submit_commands"
    assert database.attributes["db.operation.name"] == "SELECT"


async def test_a_batch_call_is_a_child_of_its_first_request_and_linked_from_the_others(
    rig: Rig, tmp_path: Path
) -> None:
    token = issue_token(Settings(jwt_secret=JWT_SECRET), USER)
    auth = {"Authorization": f"Bearer {token}"}
    command = {"command_type": "RequestConceptGeneration", "payload": {}}
    traces = [secrets.token_hex(16) for _ in range(24)]
    # One pool connection: while one batch is in the database, the requests arriving meanwhile queue for the next.
    async with (
        OtlpReceiver().running() as receiver,
        _api(rig, tmp_path, **_otel(receiver), TRACE_SQL_SPANS="true", DB_POOL_MAX="1") as base,
        aiohttp.ClientSession(headers=auth) as http,
    ):
        sessions = []
        for _ in traces:
            async with http.post(f"{base}/genesis/sessions") as r:
                sessions.append((await r.json())["id"])

        async def send(session_id: str, trace_id: str) -> None:
            sent = {"traceparent": _traceparent(trace_id, secrets.token_hex(8))}
            async with http.post(f"{base}/genesis/sessions/{session_id}/commands", json=command, headers=sent) as r:
                assert r.status == 202

        await asyncio.gather(*(send(s, t) for s, t in zip(sessions, traces, strict=True)))

        def servers() -> dict[str, ReceivedSpan]:
            return {s.trace_id: s for s in receiver.spans if s.name.endswith("/commands") and s.trace_id in traces}

        async def all_arrived() -> bool:
            calls = [s for s in receiver.spans if s.name == "SELECT submit_commands"]
            return len(servers()) == len(traces) and sum(1 + len(s.links) for s in calls) >= len(traces)

        await eventually(all_arrived, within=20, what="every request's server span and the batch calls' spans")
    batches = [s for s in receiver.spans if s.name == "SELECT submit_commands"]
    served = servers()
    # Every request is served by exactly one batch call: as its parent's child, or as one of its links.
    covered = [(b.trace_id, b.parent_span_id) for b in batches] + [link for b in batches for link in b.links]
    assert sorted(covered) == sorted((t, served[t].span_id) for t in traces)
    assert any(b.links for b in batches), "24 requests at once on one connection never shared a batch"


async def test_without_otlp_settings_the_api_still_carries_the_trace_into_the_event(rig: Rig, tmp_path: Path) -> None:
    token = issue_token(Settings(jwt_secret=JWT_SECRET), USER)
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    async with _api(rig, tmp_path) as base, aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        async with http.post(
            f"{base}/genesis/sessions", headers={"traceparent": _traceparent(trace_id, caller_span)}
        ) as r:
            continued = (await r.json())["id"]
        async with http.post(f"{base}/genesis/sessions") as r:
            started = (await r.json())["id"]
    query = "SELECT metadata->>'traceparent' FROM domain_events WHERE aggregate_id = $1"
    carried = await rig.pool.fetchval(query, uuid.UUID(continued))
    assert _trace_id(carried) == trace_id
    assert carried.endswith("-01")  # the caller sampled it: so it stays, for whoever records it downstream
    new = await rig.pool.fetchval(query, uuid.UUID(started))
    assert _trace_id(new) not in (trace_id, "0" * 32)
    assert int(new.rsplit("-", 1)[1], 16) & 1 == 0  # not sampled: ids only, nothing here records or exports it
