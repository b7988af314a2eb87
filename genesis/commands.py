"""The command catalogue, Python side: the payload shape of each command type.

Adding a command type is one model (with an example) in `PAYLOADS` here plus one row in
sql/functions/genesis_command_catalogue.sql (its mode, event and stage rule).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from genesis import errors

# Unicode's White_Space property, character by character: what sql/functions/genesis_is_blank.sql strips, the
# authority for "a non-empty string" (a regex's \s or str.isspace() differ from it, and from each other).
WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def is_blank(text: str) -> bool:
    """The mirror of genesis_is_blank(text) in SQL: empty, or White_Space only."""
    return not text.strip(WHITE_SPACE)


def _integral(value: object) -> object:
    """JSON has one number type, and JSON Schema counts 6.0 as an integer: so does the API (6.5, true, "6" are not)."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


# An integer field of a request body: strict (no bool, no string), but 6.0 is 6.
JsonInt = Annotated[int, pydantic.BeforeValidator(_integral)]

Stage = Literal["CONCEPT_SELECTION", "STORY_CONCEPTION", "WORLDVIEW", "CHARACTERS", "PLOT_OUTLINE", "FINISHED"]


class _Payload(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)


class RequestConceptGeneration(_Payload):
    """Ask the concept agent for story concepts to choose from."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={"examples": [{"count": 3, "preferences": {"genre": "fantasy"}}]}
    )

    count: JsonInt = pydantic.Field(default=3, ge=1, le=10)
    preferences: dict[str, Any] = pydantic.Field(default_factory=dict)


class SubmitFeedback(_Payload):
    """Feedback on what the agents proposed for the current stage."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={"examples": [{"feedback": "Darker, please, and fewer dragons."}]}
    )

    feedback: str = pydantic.Field(min_length=1, max_length=10_000)
    target: str | None = pydantic.Field(default=None, max_length=200)

    @pydantic.field_validator("feedback")
    @classmethod
    def _not_blank(cls, feedback: str) -> str:
        if is_blank(feedback):
            raise ValueError("must be a non-empty string")  # SQL's words for the same rule (submit_command)
        return feedback


class ConfirmStage(_Payload):
    """Confirm the current stage (optionally with its final data) and move to the next."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "examples": [{"stage": "CONCEPT_SELECTION", "data": {"concept": "A lighthouse keeper's last summer"}}]
        }
    )

    stage: Stage
    data: dict[str, Any] = pydantic.Field(default_factory=dict)


PAYLOADS: dict[str, type[_Payload]] = {
    "RequestConceptGeneration": RequestConceptGeneration,
    "SubmitFeedback": SubmitFeedback,
    "ConfirmStage": ConfirmStage,
}

# A valid payload per command type (OpenAPI examples, the console's pre-filled editor), from the models.
EXAMPLES: dict[str, dict[str, Any]] = {
    name: model.model_json_schema()["examples"][0] for name, model in PAYLOADS.items()
}


def validate(command_type: object, payload: object) -> tuple[str, dict[str, Any]]:
    """Checks a command's shape; returns it as it will be stored (only the fields sent, an integral 6.0 as 6)."""
    if not isinstance(command_type, str) or command_type not in PAYLOADS:
        if not isinstance(command_type, str) or not command_type:
            raise errors.ValidationFailed(
                "command_type must be a non-empty string", fields={"command_type": "required string"}
            )
        raise errors.UnknownCommand(f"Unknown command type {command_type!r}", supported_command_types=sorted(PAYLOADS))
    if not isinstance(payload, dict):
        raise errors.ValidationFailed("payload must be a JSON object", fields={"payload": "must be an object"})
    try:
        model = PAYLOADS[command_type].model_validate(payload)
    except pydantic.ValidationError as exc:
        fields = {".".join(str(p) for p in ("payload", *e["loc"])): e["msg"] for e in exc.errors()}
        raise errors.ValidationFailed(f"Invalid payload for {command_type}", fields=fields) from None
    return command_type, model.model_dump(exclude_unset=True)
