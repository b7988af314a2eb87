"""Domain errors, and the one place that turns the SQL functions' SQLSTATEs into them."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


class DomainError(Exception):
    """A refusal the client can act on. `fields` are copied into the error body."""

    status = 400
    error_code = "BAD_REQUEST"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def body(self) -> dict[str, Any]:
        return {"error_code": self.error_code, "message": self.message, **self.fields}


def _error(name: str, status: int, code: str) -> type[DomainError]:
    return type(name, (DomainError,), {"status": status, "error_code": code})


SessionNotFound = _error("SessionNotFound", 404, "SESSION_NOT_FOUND")
CommandNotFound = _error("CommandNotFound", 404, "COMMAND_NOT_FOUND")
OutboxRowNotFound = _error("OutboxRowNotFound", 404, "OUTBOX_ROW_NOT_FOUND")
DuplicateCommand = _error("DuplicateCommand", 409, "DUPLICATE_COMMAND")
StageConflict = _error("StageConflict", 409, "STAGE_CONFLICT")
SessionClosed = _error("SessionClosed", 409, "SESSION_CLOSED")
CommandNotPending = _error("CommandNotPending", 409, "COMMAND_NOT_PENDING")
AlreadyWaiting = _error("AlreadyWaiting", 409, "ALREADY_WAITING")
UnknownCommand = _error("UnknownCommand", 422, "UNKNOWN_COMMAND")
ValidationFailed = _error("ValidationFailed", 422, "VALIDATION_ERROR")
IdempotencyKeyReused = _error("IdempotencyKeyReused", 422, "IDEMPOTENCY_KEY_REUSED")
Unauthorized = _error("Unauthorized", 401, "UNAUTHORIZED")
Forbidden = _error("Forbidden", 403, "FORBIDDEN")
InvalidJson = _error("InvalidJson", 400, "INVALID_JSON")
HeaderTooLarge = _error("HeaderTooLarge", 400, "HEADER_TOO_LARGE")
PayloadTooLarge = _error("PayloadTooLarge", 413, "PAYLOAD_TOO_LARGE")
UnsupportedMediaType = _error("UnsupportedMediaType", 415, "UNSUPPORTED_MEDIA_TYPE")
TooManyStreams = _error("TooManyStreams", 429, "TOO_MANY_STREAMS")
Busy = _error("Busy", 503, "SERVICE_BUSY")
Unavailable = _error("Unavailable", 503, "SERVICE_UNAVAILABLE")
Internal = _error("Internal", 500, "INTERNAL_ERROR")
CorsNotAllowed = _error("CorsNotAllowed", 403, "CORS_NOT_ALLOWED")

# SQLSTATEs raised by sql/functions (genesis_refuse) and the triggers of sql/migrations.
SQLSTATES: dict[str, type[DomainError]] = {
    "GS404": SessionNotFound,
    "GS405": CommandNotFound,
    "GS406": OutboxRowNotFound,
    "GS409": DuplicateCommand,
    "GS410": StageConflict,
    "GS411": SessionClosed,
    "GS412": CommandNotPending,
    "GS413": AlreadyWaiting,
    "GS422": UnknownCommand,
    "GS423": ValidationFailed,
    "GS424": IdempotencyKeyReused,
}


def by_error_code(error_code: str) -> type[DomainError]:
    """The domain error an API answer's `error_code` stands for (agents map refusals back with it)."""
    todo: list[type[DomainError]] = [DomainError]
    while todo:
        kind = todo.pop()
        if kind.error_code == error_code:
            return kind
        todo.extend(kind.__subclasses__())
    return DomainError


# The contract fixes the 409 body word for word.
DUPLICATE_MESSAGE = "Command already processing"


def from_postgres(exc: asyncpg.PostgresError) -> DomainError | None:
    """The domain error a refusal from SQL stands for, or None for anything else."""
    return from_refusal(exc.sqlstate or "", str(getattr(exc, "message", exc)), getattr(exc, "detail", None))


def from_refusal(sqlstate: str, message: str, raw_detail: str | None) -> DomainError | None:
    """The domain error for a refusal's SQLSTATE, message and detail (JSON fields), as raised or as a row of
    submit_commands reports it; None for a SQLSTATE that is not a refusal."""
    kind = SQLSTATES.get(sqlstate)
    if kind is None:
        return None
    detail: dict[str, Any] = {}
    if raw_detail:
        try:
            parsed = json.loads(raw_detail)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            detail = parsed
    return kind(DUPLICATE_MESSAGE if kind is DuplicateCommand else message, **detail)
