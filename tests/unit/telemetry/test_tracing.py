"""When spans are exported, and what the trace helpers read and write."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from opentelemetry import trace

from api import server_spans
from genesis.cli.topic_tail import describe
from genesis.telemetry import tracing


@pytest.mark.parametrize(
    ("env", "exporting"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_spans_are_exported_only_when_an_otlp_endpoint_is_set(env: dict[str, str], exporting: bool) -> None:
    assert tracing.exporting_configured(env) is exporting


def test_no_current_span_means_no_trace_context() -> None:
    assert tracing.current_context() == (None, None)


def test_the_tail_line_names_the_record_and_its_trace() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = [("event_type", b"Genesis.Session.Created"), ("ce_id", b"e-1"), ("traceparent", traceparent.encode())]
    assert describe(2, 41, b"s-1", headers) == (
        "partition=2 offset=41 key=s-1 event_type=Genesis.Session.Created ce_id=e-1 "
        "trace_id=0af7651916cd43dd8448eb211c80319c"
    )
    assert describe(0, 0, None, []).endswith("event_type=- ce_id=- trace_id=-")
    assert trace.get_current_span().get_span_context().is_valid is False


@pytest.mark.parametrize(
    ("host", "server"),
    [
        ("api.example:8443", {"server.address": "api.example", "server.port": 8443}),
        ("[::1]:8000", {"server.address": "::1", "server.port": 8000}),
        ("[::1]", {"server.address": "::1"}),
        ("api.example", {"server.address": "api.example"}),
    ],
)
def test_the_server_span_names_the_server_as_the_host_header_does(host: str, server: dict[str, object]) -> None:
    request = make_mocked_request("GET", "/genesis/sessions?after=3", headers={"Host": host, "User-Agent": "t/1"})
    attributes = server_spans._attributes(request, "GET", "/genesis/sessions")
    assert {k: v for k, v in attributes.items() if k.startswith("server.")} == server
    assert attributes["url.path"] == "/genesis/sessions"
    assert attributes["url.query"] == "after=3"
    assert attributes["user_agent.original"] == "t/1"
