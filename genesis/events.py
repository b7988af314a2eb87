"""Events: their naming rule, and what each one carries in its payload.

Naming: `<Domain>.<AggregateRoot>[.<SubAggregate>].<ActionInPastTense>`. The same rule is the CHECK
`domain_events_event_type_format` in sql/migrations; a test keeps them equal.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal

import pydantic

from genesis.commands import Stage

PAST_TENSE_ACTIONS = (
    "Requested", "Created", "Proposed", "Submitted", "Confirmed",
    "Updated", "Revised", "Completed", "Finished", "Failed",
)  # fmt: skip

EVENT_TYPE_PATTERN = (
    r"^[A-Z][A-Za-z0-9]*\.[A-Z][A-Za-z0-9]*(\.[A-Z][A-Za-z0-9]*)?\.([A-Z][A-Za-z0-9]*)?"
    rf"({'|'.join(PAST_TENSE_ACTIONS)})$"
)
_EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN)


def is_valid_event_type(event_type: str) -> bool:
    return _EVENT_TYPE.fullmatch(event_type) is not None


# --- What each event carries in `payload` (the AsyncAPI document's message schemas, genesis/asyncapi.py) ---------
# The command catalogue's own events come from sql/functions/genesis_command_catalogue.sql: a command's event
# carries its payload as sent (the models in genesis/commands.py) unless COMMAND_EVENT_PAYLOADS says otherwise,
# and an async command's result events carry CommandSettled. The events recorded outside the catalogue are in
# SESSION_EVENTS. tests/unit/test_asyncapi.py finds every event type the SQL functions name in one of the two.


class _EventPayload(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class SessionCreated(_EventPayload):
    """A session was created (create_session); it starts at CONCEPT_SELECTION."""

    user_id: str
    stage: Stage


class StageConfirmed(_EventPayload):
    """ConfirmStage was recorded: the stage confirmed, the stage the session moved to, and the data confirmed."""

    stage: Stage
    next_stage: Stage
    data: dict[str, Any]


class SessionFinished(_EventPayload):
    """The last stage was confirmed (after StageConfirmed, in the same command): the session is COMPLETED."""

    stage_data: dict[str, Any] = pydantic.Field(description="The data confirmed at each stage, by stage")


class CommandSettled(_EventPayload):
    """An agent settled an async command (complete_command): its result, as the agent sent it."""

    command_id: uuid.UUID
    command_type: str
    result: dict[str, Any]


class CommandExpired(_EventPayload):
    """A command was still pending after COMMAND_TIMEOUT (expire_stale_commands): it is FAILED."""

    command_id: uuid.UUID
    command_type: str
    reason: str


class FlowFailed(_EventPayload):
    """A flow waiting for the user (a resume handle) was not resumed before its deadline (expire_flow_handles)."""

    correlation_id: uuid.UUID = pydantic.Field(description="The command whose flow was waiting")
    handle_id: uuid.UUID
    reason: Literal["EXPIRED"]


# Events recorded outside the command catalogue, by event type.
SESSION_EVENTS: dict[str, type[pydantic.BaseModel]] = {
    "Genesis.Session.Created": SessionCreated,
    "Genesis.Session.Finished": SessionFinished,
    "Genesis.Session.CommandFailed": CommandExpired,
    "Genesis.Session.Flow.Failed": FlowFailed,
}

# A catalogue command whose event does not carry the command's payload as sent (submit_command's ConfirmStage branch).
COMMAND_EVENT_PAYLOADS: dict[str, type[pydantic.BaseModel]] = {"ConfirmStage": StageConfirmed}
