"""Event history over HTTP, CORS, and the OpenAPI document against the router and real responses."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import asyncpg
import jsonschema
import pytest
from aiohttp import web

from api.app import create_app
from api.openapi import document
from genesis.settings import Settings
from tests.integration.tables import Auth, Client
from tests.relay_harness import complete, submit


async def test_events_page_in_order_with_next_after(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any]
) -> None:
    for i in range(3):  # 6 events after Created
        await complete(conn, await submit(conn, session_id, "SubmitFeedback", {"feedback": f"{i}"}, "alice"))
    response = await client.get(f"/genesis/sessions/{session_id}/events?limit=4", headers=auth())
    assert response.status == 200
    page = await response.json()
    assert [e["aggregate_version"] for e in page["events"]] == [1, 2, 3, 4]
    assert page["events"][0]["event_type"] == "Genesis.Session.Created"
    assert page["next_after"] == page["events"][-1]["sequence"]

    rest = await (
        await client.get(f"/genesis/sessions/{session_id}/events?after={page['next_after']}", headers=auth())
    ).json()
    assert [e["aggregate_version"] for e in rest["events"]] == [5, 6, 7]
    empty = await (
        await client.get(f"/genesis/sessions/{session_id}/events?after={rest['next_after']}", headers=auth())
    ).json()
    assert empty == {"events": [], "next_after": rest["next_after"]}


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=501", "limit=abc", "after=-1", "after=x", "after=", "after=%205", "after=%2B5", "after=5_0",
     "after=%D9%A5", "limit=", "after=9223372036854775808"],
)  # fmt: skip
async def test_events_bad_query_is_422(client: Client, auth: Auth, session_id: str, query: str) -> None:
    response = await client.get(f"/genesis/sessions/{session_id}/events?{query}", headers=auth())
    assert response.status == 422
    assert (await response.json())["error_code"] == "VALIDATION_ERROR"


async def test_events_of_someone_elses_session_do_not_exist(client: Client, auth: Auth, session_id: str) -> None:
    for path in (f"/genesis/sessions/{session_id}/events", f"/genesis/sessions/{session_id}/events/stream"):
        response = await client.get(path, headers=auth("mallory"))
        assert response.status == 404
        assert (await response.json())["error_code"] == "SESSION_NOT_FOUND"


async def test_cors_preflight_and_headers_follow_cors_origins(
    settings: Settings, aiohttp_client: Callable[..., Any], auth: Auth
) -> None:
    client = await aiohttp_client(create_app(dataclasses.replace(settings, cors_origins=("https://app.example",))))
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    response = await client.options("/genesis/sessions", headers=preflight)
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]

    denied = await client.options("/genesis/sessions", headers={**preflight, "Origin": "https://evil.example"})
    assert denied.status == 403
    assert "Access-Control-Allow-Origin" not in denied.headers
    assert (await denied.json())["error_code"] == "CORS_NOT_ALLOWED"

    created = await client.post("/genesis/sessions", headers={**auth(), "Origin": "https://app.example"})
    assert created.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Location" in created.headers["Access-Control-Expose-Headers"]
    refused = await client.post("/genesis/sessions", headers={"Origin": "https://app.example", "X-Request-ID": "r-1"})
    assert refused.status == 401  # error answers carry the headers too
    assert (refused.headers["Access-Control-Allow-Origin"], refused.headers["X-Request-ID"]) == (
        "https://app.example",
        "r-1",
    )


async def test_no_cors_when_unset(client: Client) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    response = await client.options("/healthz", headers=preflight)
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in (await client.get("/healthz", headers=preflight)).headers


def _router_operations(app: web.Application) -> set[tuple[str, str]]:
    ops = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method in ("HEAD", "OPTIONS") or path is None:
            continue
        ops.add((route.method.lower(), path))
    return ops


async def test_openapi_and_router_agree_both_ways(client: Client) -> None:
    served = await (await client.get("/openapi.json")).json()
    assert served["openapi"] == "3.1.0"
    documented = {(method, path) for path, methods in served["paths"].items() for method in methods}
    assert documented == _router_operations(client.app)
    # Every operation is named after its route, so logs, metrics and the document use one vocabulary.
    # The console's dev-only token route is not documented.
    undocumented = {"console_token"}
    names = {route.name for route in client.app.router.routes() if route.name and route.name not in undocumented}
    assert {op["operationId"] for methods in served["paths"].values() for op in methods.values()} == names
    jsonschema.Draft202012Validator.check_schema({"$defs": served["components"]["schemas"]})


def _validate(body: Any, status: int, path: str, method: str) -> None:
    doc = document()
    response = doc["paths"][path][method]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    resolver_doc = {**schema, "components": doc["components"]}
    jsonschema.validate(body, resolver_doc, cls=jsonschema.Draft202012Validator)


async def test_real_responses_validate_against_the_document(client: Client, auth: Auth) -> None:
    cmd_path = "/genesis/sessions/{session_id}/commands"
    created = await client.post("/genesis/sessions", headers=auth())
    session = await created.json()
    _validate(session, 201, "/genesis/sessions", "post")
    sid = session["id"]
    _validate(
        await (await client.get(f"/genesis/sessions/{sid}", headers=auth())).json(),
        200,
        "/genesis/sessions/{session_id}",
        "get",
    )

    request = {"command_type": "RequestConceptGeneration", "payload": {}}
    accepted = await client.post(f"/genesis/sessions/{sid}/commands", json=request, headers=auth())
    body = await accepted.json()
    _validate(body, 202, cmd_path, "post")
    duplicate = await client.post(f"/genesis/sessions/{sid}/commands", json=request, headers=auth())
    _validate(await duplicate.json(), 409, cmd_path, "post")
    command = await client.get(f"/genesis/sessions/{sid}/commands/{body['command_id']}", headers=auth())
    _validate(await command.json(), 200, "/genesis/sessions/{session_id}/commands/{command_id}", "get")

    confirm = {"command_type": "ConfirmStage", "payload": {"stage": "CONCEPT_SELECTION"}}
    confirmed = await client.post(f"/genesis/sessions/{sid}/commands", json=confirm, headers=auth())
    _validate(await confirmed.json(), 200, cmd_path, "post")
    unknown = await client.post(f"/genesis/sessions/{sid}/commands", json={"command_type": "Nope"}, headers=auth())
    _validate(await unknown.json(), 422, cmd_path, "post")
    events = await client.get(f"/genesis/sessions/{sid}/events", headers=auth())
    _validate(await events.json(), 200, "/genesis/sessions/{session_id}/events", "get")
    _validate(await (await client.get("/genesis/sessions/" + sid)).json(), 401, "/genesis/sessions/{session_id}", "get")
    _validate(await (await client.get("/readyz")).json(), 200, "/readyz", "get")
