"""/docs: Swagger UI from the installed package, served by the API, loading nothing from elsewhere (its files are
checked here; tests/browser/test_docs.py renders it). The pages' files are answered whole (api/assets.py), and every
route takes only the methods the document names (api/routing.py)."""

from __future__ import annotations

import re

import pytest

from api.docs import ASSETS
from tests.integration.tables import Client


async def test_the_docs_page_needs_no_token_and_every_file_it_loads_is_served(client: Client) -> None:
    response = await client.get("/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    html = await response.text()
    links = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert links, html
    assert all(link.startswith("/docs/static/") for link in links), links  # nothing from elsewhere
    for link in links:
        served = await client.get(link)
        assert served.status == 200, link
        assert await served.read() == ASSETS[link.removeprefix("/docs/static/")].read_bytes()
    initializer = await (await client.get("/docs/static/docs.js")).text()
    assert 'url: "/openapi.json"' in initializer
    assert "validatorUrl: null" in initializer  # Swagger UI's default badge is an image from swagger.io


async def test_only_the_pages_files_are_served(client: Client) -> None:
    for name in ("swagger-editor-bundle.js", "..%2Fdocs.py", "index.html", "LICENSE"):
        assert (await client.get(f"/docs/static/{name}")).status == 404, name


@pytest.mark.parametrize("path", ["/docs/static/swagger-ui.css", "/console/static/console.js"])
async def test_a_file_is_answered_whole_never_a_range_or_a_304(client: Client, path: str) -> None:
    whole = await (await client.get(path)).read()
    asked: list[dict[str, str]] = [
        {"Range": "bytes=0-10"},
        {"Range": "bytes=999999999-"},  # a file handler answers 416 with an empty, non-JSON body
        {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    ]
    for headers in asked:
        response = await client.get(path, headers=headers)
        assert response.status == 200, (headers, response.status)
        assert await response.read() == whole


async def test_head_is_a_json_405_like_any_method_a_route_does_not_take(client: Client) -> None:
    for path in ("/healthz", "/openapi.json", "/docs/static/docs.js", "/console"):
        response = await client.head(path)
        assert response.status == 405, path
        assert response.headers["Allow"] == "GET", path
        refused = await client.request("DELETE", path)  # the body a HEAD answer cannot carry
        assert (await refused.json())["error_code"] == "METHOD_NOT_ALLOWED", path


async def test_an_expectation_it_does_not_know_is_ignored_and_100_continue_still_works(client: Client) -> None:
    response = await client.get("/healthz", headers={"Expect": "banana"})
    assert response.status == 200  # RFC 9110 lets a server ignore it; aiohttp answered a text/plain 417
    assert (await response.json())["status"] == "ok"
    expected = await client.post("/genesis/sessions", json={}, expect100=True)
    assert expected.status == 401  # the body was sent after "100 Continue", and the token is checked as ever
    assert (await expected.json())["error_code"] == "UNAUTHORIZED"
