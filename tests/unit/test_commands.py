"""The Python side of the command catalogue: payload shapes, and the errors a bad one gives."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from genesis import commands, errors


@pytest.mark.parametrize("command_type", sorted(commands.PAYLOADS))
def test_every_example_is_valid(command_type: str) -> None:
    example = commands.EXAMPLES[command_type]
    assert commands.validate(command_type, example) == (command_type, example)


def test_the_payload_is_stored_as_sent_without_defaults() -> None:
    assert commands.validate("RequestConceptGeneration", {}) == ("RequestConceptGeneration", {})


@pytest.mark.parametrize("command_type", [None, 3, "", ["ConfirmStage"], {"a": 1}])
def test_command_type_must_be_a_non_empty_string(command_type: object) -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        commands.validate(command_type, {})
    assert caught.value.fields == {"fields": {"command_type": "required string"}}
    assert caught.value.status == 422


def test_unknown_command_lists_the_supported_ones() -> None:
    with pytest.raises(errors.UnknownCommand) as caught:
        commands.validate("LaunchRocket", {})
    assert caught.value.error_code == "UNKNOWN_COMMAND"
    assert caught.value.fields == {
        "supported_command_types": ["ConfirmStage", "RequestConceptGeneration", "SubmitFeedback"]
    }


@pytest.mark.parametrize("payload", [None, [], "x", 1])
def test_payload_must_be_an_object(payload: object) -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        commands.validate("ConfirmStage", payload)
    assert caught.value.fields == {"fields": {"payload": "must be an object"}}


@pytest.mark.parametrize(
    ("command_type", "payload", "field"),
    [
        ("RequestConceptGeneration", {"count": "3"}, "payload.count"),  # strict: no coercion
        ("RequestConceptGeneration", {"count": 0}, "payload.count"),
        ("RequestConceptGeneration", {"count": 11}, "payload.count"),
        ("RequestConceptGeneration", {"count": True}, "payload.count"),
        ("RequestConceptGeneration", {"preferences": []}, "payload.preferences"),
        ("RequestConceptGeneration", {"bogus": 1}, "payload.bogus"),
        ("SubmitFeedback", {}, "payload.feedback"),
        ("SubmitFeedback", {"feedback": ""}, "payload.feedback"),
        ("SubmitFeedback", {"feedback": "   "}, "payload.feedback"),
        ("SubmitFeedback", {"feedback": 5}, "payload.feedback"),
        ("SubmitFeedback", {"feedback": "x" * 10_001}, "payload.feedback"),
        ("SubmitFeedback", {"feedback": "ok", "target": "t" * 201}, "payload.target"),
        ("ConfirmStage", {}, "payload.stage"),
        ("ConfirmStage", {"stage": "NOPE"}, "payload.stage"),
        ("ConfirmStage", {"stage": "concept_selection"}, "payload.stage"),
        ("ConfirmStage", {"stage": "WORLDVIEW", "data": "x"}, "payload.data"),
    ],
)
def test_bad_payload_names_the_offending_field(command_type: str, payload: dict[str, Any], field: str) -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        commands.validate(command_type, payload)
    fields = caught.value.fields["fields"]
    assert field in fields, fields
    assert caught.value.message == f"Invalid payload for {command_type}"


@pytest.mark.parametrize("count", [4, 4.0])
def test_an_integral_number_is_an_integer_and_stored_as_one(count: object) -> None:
    # JSON Schema (the OpenAPI document) counts 4.0 as an integer: so does the API, and it stores 4.
    stored = commands.validate("RequestConceptGeneration", {"count": count})[1]
    assert stored == {"count": 4}
    assert type(stored["count"]) is int


@pytest.mark.parametrize("count", [4.5, True, "4", float("inf")])
def test_a_fraction_a_boolean_or_a_string_is_no_integer(count: object) -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        commands.validate("RequestConceptGeneration", {"count": count})
    assert "payload.count" in caught.value.fields["fields"]


def test_every_integer_field_of_every_request_body_takes_an_integral_float() -> None:
    from api.tasks import BODIES

    integral = typing.get_args(commands.JsonInt)[1]  # the validator that makes 6.0 the integer 6
    models = [*commands.PAYLOADS.values(), *BODIES.values()]
    fields = {f"{m.__name__}.{n}": f for m in models for n, f in m.model_fields.items() if f.annotation is int}
    assert set(fields) == {"RequestConceptGeneration.count", "TaskProgress.progress", "TaskWait.timeout_seconds"}
    for name, field in fields.items():
        assert integral in field.metadata, name
