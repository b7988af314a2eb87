"""The developer console's routes: a public page and files, and a token route that exists only in dev mode."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from api.app import create_app
from api.console import STATIC
from genesis.settings import Settings
from tests.integration.tables import Client

ASSETS = ("console.js", "sse.js", "dom.js", "tasks.js", "waiting.js", "console.css")


@pytest.fixture
async def dev_client(settings: Settings, aiohttp_client: Callable[..., Any]) -> Client:
    test_client: Client = await aiohttp_client(create_app(dataclasses.replace(settings, dev=True)))
    return test_client


async def test_console_page_needs_no_token_and_links_its_assets(client: Client) -> None:
    response = await client.get("/console")
    assert response.status == 200
    assert response.content_type == "text/html"
    html = await response.text()
    assert 'data-testid="send-command"' in html
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    links = re.findall(r'(?:src|href)="(/console/static/[^"]+)"', html)
    # sse.js, dom.js, tasks.js, waiting.js: console.js imports them
    assert links == ["/console/static/favicon.svg", "/console/static/console.css", "/console/static/console.js"]
    for src in links:
        assert (await client.get(src)).status == 200, src


@pytest.mark.parametrize(("asset", "media"), [(a, "javascript" if a.endswith(".js") else "css") for a in ASSETS])
async def test_static_assets_served_without_a_token(client: Client, asset: str, media: str) -> None:
    response = await client.get(f"/console/static/{asset}")
    assert response.status == 200
    assert media in response.content_type
    assert await response.text() == (STATIC / asset).read_text()


async def test_static_route_serves_only_its_folder(client: Client) -> None:
    assert (await client.get("/console/static/nope.js")).status == 404
    assert (await client.get("/console/static/../console.py")).status in (403, 404)
    assert (await client.get("/console/static/%2e%2e/console.py")).status in (403, 404)


async def test_the_console_references_no_external_url() -> None:
    files = sorted(STATIC.iterdir())
    assert {f.name for f in files} >= {"index.html", *ASSETS}
    for path in files:
        text = path.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, never fetched
        assert "http://" not in text, path.name
        assert "https://" not in text, path.name
        assert not re.search(r"""["'(]//\w""", text), f"{path.name}: protocol-relative URL"


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_token_route_does_not_exist_outside_dev_mode(client: Client, method: str) -> None:
    response = await client.request(method, "/console/token")
    assert response.status == 404
    assert not any(r.name == "console_token" for r in client.app.router.routes())


async def test_dev_token_is_accepted_by_the_api(dev_client: Client, settings: Settings) -> None:
    response = await dev_client.post("/console/token", json={"user": "carol"})
    assert response.status == 200
    body = await response.json()
    assert body["user"] == "carol"
    claims = jwt.decode(body["token"], settings.jwt_secret, algorithms=["HS256"])
    assert claims["sub"] == "carol"

    created = await dev_client.post("/genesis/sessions", headers={"Authorization": f"Bearer {body['token']}"})
    assert created.status == 201
    assert (await created.json())["user_id"] == "carol"


async def test_dev_token_defaults_to_dev_user_by_get_and_post(dev_client: Client) -> None:
    by_get = await (await dev_client.get("/console/token")).json()
    by_post = await (await dev_client.post("/console/token")).json()
    by_query = await (await dev_client.get("/console/token?user=dave")).json()
    assert (by_get["user"], by_post["user"], by_query["user"]) == ("dev-user", "dev-user", "dave")
    for token in (by_get["token"], by_query["token"]):
        created = await dev_client.post("/genesis/sessions", headers={"Authorization": f"Bearer {token}"})
        assert created.status == 201


@pytest.mark.parametrize("user", ["x" * 201, "a\nb", 42])
async def test_dev_token_refuses_a_bad_user_name(dev_client: Client, user: object) -> None:
    response = await dev_client.post("/console/token", json={"user": user})
    assert response.status == 422
    assert (await response.json())["error_code"] == "VALIDATION_ERROR"


async def test_everything_the_console_calls_still_needs_a_token(dev_client: Client) -> None:
    assert (await dev_client.post("/genesis/sessions")).status == 401
    assert (await dev_client.get("/openapi.json")).status == 200  # the catalogue is public
