"""/docs in a real browser: Swagger UI renders the whole document, with every request to the API's own origin."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import ConsoleMessage, Page, Request, expect

from api.app import create_app
from api.openapi import document
from genesis import commands
from genesis.settings import Settings
from tests.browser.chromium import NEEDS_CHROMIUM

pytestmark = NEEDS_CHROMIUM


async def test_swagger_ui_renders_every_operation_from_this_server_alone(
    settings: Settings, aiohttp_server: Callable[..., Any], page: Page, tmp_path: Path
) -> None:
    server = await aiohttp_server(create_app(settings))
    origin = str(server.make_url("/")).rstrip("/")
    requests: list[Request] = []
    page.on("request", lambda r: requests.append(r))
    complaints: list[str] = []  # a CSP violation or a failed load is a console error
    page.on("console", lambda m: complaints.append(m.text) if _is_error(m) else None)

    await page.goto(f"{origin}/docs")
    operations = [op for methods in document()["paths"].values() for op in methods.values()]
    await expect(page.locator(".opblock")).to_have_count(len(operations))
    for operation in operations:  # each with its summary
        await expect(page.locator(f"#operations-{operation['tags'][0]}-{operation['operationId']}")).to_contain_text(
            operation["summary"]
        )

    await page.locator("#operations-Commands-submit_command .opblock-summary").click()
    examples = page.locator("#operations-Commands-submit_command .examples-select select").first
    await expect(examples).to_be_visible()
    names = await examples.locator("option").all_text_contents()
    assert [n.split(" (")[0] for n in names] == list(commands.EXAMPLES)  # an example per command type
    await page.screenshot(path=tmp_path / "docs.png", full_page=True)

    foreign = [r.url for r in requests if not r.url.startswith(("data:", origin))]
    assert foreign == []
    assert {urlsplit(r.url).path for r in requests} >= {"/docs", "/docs/static/swagger-ui-bundle.js", "/openapi.json"}
    assert complaints == []


def _is_error(message: ConsoleMessage) -> bool:
    return message.type == "error"
