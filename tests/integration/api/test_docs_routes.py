"""/docs: Swagger UI from the installed package, served by the API, loading nothing from elsewhere (its files are
checked here; tests/browser/test_docs.py renders it)."""

from __future__ import annotations

import re

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
