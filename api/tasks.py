"""Routes for agents (CONTRACT §9): progress on a task and its completion, for tokens with the agent scope."""

from __future__ import annotations

import logging
import uuid
from typing import Any, Literal

import pydantic
from aiohttp import web

from api import state
from api.requests import json_body, path_uuid
from api.scopes import require_scope
from genesis import db, errors
from genesis.auth.tokens import AGENT_SCOPE
from genesis.commands import PAYLOADS, JsonInt
from genesis.logs import bind

log = logging.getLogger("genesis.api")
routes = web.RouteTableDef()

MAX_MESSAGE = 1000
MAX_WAIT = 604800  # a week, in seconds


class _Body(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)


class TaskProgress(_Body):
    """How far the agent is: a percentage and a line for the user."""

    model_config = pydantic.ConfigDict(json_schema_extra={"examples": [{"progress": 30, "message": "Drafting"}]})

    progress: JsonInt = pydantic.Field(ge=0, le=100)
    message: str = pydantic.Field(default="", max_length=MAX_MESSAGE)


class TaskCompletion(_Body):
    """The task's outcome and its result (which the result event carries)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={"examples": [{"outcome": "COMPLETED", "result": {"concepts": [{"title": "A"}]}}]}
    )

    outcome: Literal["COMPLETED", "FAILED"]
    result: dict[str, Any] = pydantic.Field(default_factory=dict)


class TaskWait(_Body):
    """Parks the task's flow until the user's next command of an expected type (CONTRACT §9)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "resume_handle": {"concepts": [{"title": "A"}]},
                    "timeout_seconds": 3600,
                    "expects": ["SubmitFeedback"],
                }
            ]
        }
    )

    resume_handle: dict[str, Any] = pydantic.Field(description="What the flow needs to go on; handed back on resume")
    timeout_seconds: JsonInt = pydantic.Field(ge=1, le=MAX_WAIT)
    expects: list[str] = pydantic.Field(
        min_length=1,
        description="Command types that resume the flow",
        json_schema_extra={"items": {"type": "string", "enum": [*PAYLOADS]}},  # the SQL catalogue refuses others
    )


BODIES: dict[str, type[_Body]] = {"TaskProgress": TaskProgress, "TaskCompletion": TaskCompletion, "TaskWait": TaskWait}


async def _body(request: web.Request, model: type[_Body]) -> dict[str, Any]:
    body = await json_body(request, required=True)
    if not isinstance(body, dict):
        raise errors.ValidationFailed("Body must be a JSON object", fields={"body": "must be an object"})
    try:
        return model.model_validate(body).model_dump()
    except pydantic.ValidationError as exc:
        fields = {".".join(str(p) for p in e["loc"]) or "body": e["msg"] for e in exc.errors()}
        raise errors.ValidationFailed("Invalid body", fields=fields) from None


async def _task_request(request: web.Request, model: type[_Body]) -> tuple[uuid.UUID, dict[str, Any]]:
    """What every agent route starts with: the agent scope, the command's id (bound to the logs) and the body."""
    require_scope(request, AGENT_SCOPE)
    command_id = path_uuid(request, "command_id", errors.CommandNotFound)
    bind(command_id=str(command_id), correlation_id=str(command_id))
    return command_id, await _body(request, model)


@routes.post("/genesis/tasks/{command_id}/progress", name="report_progress")
async def report_progress(request: web.Request) -> web.Response:
    command_id, body = await _task_request(request, TaskProgress)
    row = await db.call(
        request.app[state.POOL],
        "SELECT * FROM report_task_progress($1, $2, $3)",
        command_id,
        body["progress"],
        body["message"],
    )
    assert row is not None
    return web.json_response(
        {"command_id": str(command_id), "command_status": row["command_status"], "progress": row["progress"]}
    )


@routes.post("/genesis/tasks/{command_id}/complete", name="complete_task")
async def complete_task(request: web.Request) -> web.Response:
    command_id, body = await _task_request(request, TaskCompletion)
    row = await db.call(
        request.app[state.POOL],
        "SELECT * FROM complete_command($1, $2, $3)",
        command_id,
        body["outcome"],
        body["result"],
    )
    assert row is not None
    log.info("task settled", extra={"fields": {"outcome": row["command_status"]}})
    return web.json_response(
        {"command_id": str(command_id), "command_status": row["command_status"], "event_id": str(row["event_id"])}
    )


@routes.post("/genesis/tasks/{command_id}/wait", name="wait_for_user")
async def wait_for_user(request: web.Request) -> web.Response:
    command_id, body = await _task_request(request, TaskWait)
    row = await db.call(
        request.app[state.POOL],
        "SELECT * FROM park_flow($1, $2, $3, $4)",
        command_id,
        body["resume_handle"],
        body["timeout_seconds"],
        body["expects"],
    )
    assert row is not None
    handle = row["handle"]
    if row["created"]:
        log.info("flow parked", extra={"fields": {"handle_id": handle["handle_id"], "status": handle["status"]}})
    return web.json_response(handle, status=201)
