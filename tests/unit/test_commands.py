"""The Python side of the command catalogue: payload shapes, and the errors a bad one gives."""

from __future__ import annotations

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
