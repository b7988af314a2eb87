"""The OpenAPI document's Error enum holds the codes the API really sends, the middlewares' own included."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from api.app import create_app
from api.openapi import document
from genesis import errors
from genesis.settings import Settings
from tests.integration.tables import Auth


def _enum() -> set[str]:
    return set(document()["components"]["schemas"]["Error"]["properties"]["error_code"]["enum"])


async def test_the_codes_the_middlewares_send_are_in_the_enum(
    settings: Settings, aiohttp_client: Callable[..., Any], auth: Auth
) -> None:
    client = await aiohttp_client(create_app(dataclasses.replace(settings, cors_origins=("https://app.example",))))
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    json_body = {**auth(), "Content-Type": "application/json"}
    responses = [
        await client.get("/no/such/route"),
        await client.delete("/openapi.json"),
        await client.options("/genesis/sessions", headers=preflight),
        await client.post("/genesis/sessions"),
        await client.post("/genesis/sessions", data=b"{", headers=json_body),
    ]
    codes = [(await r.json())["error_code"] for r in responses]
    assert codes == ["NOT_FOUND", "METHOD_NOT_ALLOWED", "CORS_NOT_ALLOWED", "UNAUTHORIZED", "INVALID_JSON"]
    assert set(codes) <= _enum()


def test_every_domain_error_is_in_the_enum_but_those_only_operators_meet() -> None:
    domain: set[str] = set()
    todo: list[type[errors.DomainError]] = [errors.DomainError]
    while todo:
        kind = todo.pop()
        todo.extend(kind.__subclasses__())
        domain.add(kind.error_code)
    # requeue/discard (the operators' CLI) are not behind any route.
    assert domain - _enum() == {"OUTBOX_ROW_NOT_FOUND"}


def test_every_operation_documents_the_400_of_a_request_the_parser_refuses() -> None:
    # A head or request line aiohttp refuses (a raw non-ASCII byte in the URL, a header over 16 KiB) is answered
    # 400 before any route is matched, so a GET without a body can get one too (the fuzzer found it undocumented).
    operations = [(m, p, o) for p, item in document()["paths"].items() for m, o in item.items() if "responses" in o]
    assert operations
    assert [(m, p) for m, p, o in operations if "400" not in o["responses"]] == []
