"""errors.from_postgres: the one place SQLSTATEs become domain errors."""

from __future__ import annotations

import json

import asyncpg
import pytest

from genesis import errors


def _pg_error(sqlstate: str, message: str = "refused", detail: str | None = None) -> asyncpg.PostgresError:
    fields = {"C": sqlstate, "M": message, "S": "ERROR"}
    if detail is not None:
        fields["D"] = detail
    error: asyncpg.PostgresError = asyncpg.PostgresError.new(fields)
    return error


@pytest.mark.parametrize(("sqlstate", "kind"), sorted(errors.SQLSTATES.items()))
def test_every_service_sqlstate_maps_to_its_domain_error(sqlstate: str, kind: type[errors.DomainError]) -> None:
    domain = errors.from_postgres(_pg_error(sqlstate, "Session is COMPLETED"))
    assert type(domain) is kind
    assert domain.status in (404, 409, 422)


def test_detail_json_becomes_the_body_fields() -> None:
    detail = json.dumps({"current_stage": "WORLDVIEW", "required_stage": "CONCEPT_SELECTION"})
    domain = errors.from_postgres(_pg_error("GS410", "Cannot confirm", detail))
    assert domain is not None
    assert domain.body() == {
        "error_code": "STAGE_CONFLICT",
        "message": "Cannot confirm",
        "current_stage": "WORLDVIEW",
        "required_stage": "CONCEPT_SELECTION",
    }


def test_the_duplicate_message_is_the_contract_wording_whatever_sql_said() -> None:
    detail = json.dumps({"duplicate_command_id": "c0ffee00-0000-0000-0000-000000000000"})
    domain = errors.from_postgres(_pg_error("GS409", "something else", detail))
    assert domain is not None
    assert domain.body() == {
        "error_code": "DUPLICATE_COMMAND",
        "message": "Command already processing",
        "duplicate_command_id": "c0ffee00-0000-0000-0000-000000000000",
    }


@pytest.mark.parametrize("detail", [None, "", "not json", "[1, 2]", '"text"'])
def test_a_detail_that_is_not_a_json_object_adds_no_fields(detail: str | None) -> None:
    domain = errors.from_postgres(_pg_error("GS404", "Session not found", detail))
    assert domain is not None
    assert domain.body() == {"error_code": "SESSION_NOT_FOUND", "message": "Session not found"}


@pytest.mark.parametrize("sqlstate", ["23505", "40001", "P0001", "GS501", "XX000"])
def test_anything_else_is_not_a_refusal(sqlstate: str) -> None:
    assert errors.from_postgres(_pg_error(sqlstate)) is None


def test_domain_error_body_and_status() -> None:
    error = errors.PayloadTooLarge("too big", limit_bytes=65536)
    assert (error.status, str(error)) == (413, "too big")
    assert error.body() == {"error_code": "PAYLOAD_TOO_LARGE", "message": "too big", "limit_bytes": 65536}
    assert errors.DomainError("plain").body() == {"error_code": "BAD_REQUEST", "message": "plain"}
