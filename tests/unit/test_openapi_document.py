"""The OpenAPI document is a real reference (CONTRACT §4): every operation has a summary and described parameters,
and the command route has an example per command type, each valid against its payload model."""

from __future__ import annotations

from typing import Any

from api.openapi import document
from genesis import commands


def _operations() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{m.upper()} {p}", op) for p, methods in document()["paths"].items() for m, op in methods.items()]


def test_every_operation_has_a_summary_a_tag_and_described_parameters() -> None:
    for name, operation in _operations():
        assert operation.get("summary"), name
        assert operation.get("tags"), name
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), (name, parameter["name"])


def test_the_command_route_has_a_valid_example_per_command_type() -> None:
    body = document()["paths"]["/genesis/sessions/{session_id}/commands"]["post"]["requestBody"]
    examples = body["content"]["application/json"]["examples"]
    assert list(examples) == list(commands.PAYLOADS)
    for name, example in examples.items():
        assert example["value"]["command_type"] == name
        commands.validate(name, example["value"]["payload"])  # raises if the example is not a valid payload


def test_a_sequence_parameter_is_bounded_as_the_server_bounds_it() -> None:
    from api.events import MAX_SEQUENCE

    for path in ("/genesis/sessions/{session_id}/events", "/genesis/sessions/{session_id}/events/stream"):
        for parameter in document()["paths"][path]["get"]["parameters"]:
            if parameter["name"] in ("after", "Last-Event-ID"):
                assert parameter["schema"]["maximum"] == MAX_SEQUENCE, (path, parameter["name"])
