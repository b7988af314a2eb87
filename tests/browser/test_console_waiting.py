"""The console shows "waiting for you" while a session's flow waits for the user (CONTRACT §9), in a real
browser against the real API: an agent parks the flow, the user's feedback resumes it and the notice goes."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import aiohttp
from playwright.async_api import Page, expect

from api.app import create_app
from genesis.auth.tokens import AGENT_SCOPE, issue_token
from genesis.settings import Settings
from tests.browser.chromium import NEEDS_CHROMIUM

pytestmark = NEEDS_CHROMIUM


async def test_the_console_says_what_the_flow_waits_for_until_the_user_answers(
    settings: Settings, aiohttp_server: Callable[..., Any], page: Page
) -> None:
    server = await aiohttp_server(create_app(dataclasses.replace(settings, dev=True)))
    url = str(server.make_url("/console"))
    await page.goto(url)
    await expect(page.locator("body")).to_have_attribute("data-ready", "1")
    await page.get_by_test_id("dev-token-button").click()
    await page.get_by_test_id("create-session").click()
    await expect(page.get_by_test_id("stream-state")).to_have_text("live")
    waiting = page.get_by_test_id("session-waiting")
    await expect(waiting).to_be_hidden()
    await page.get_by_test_id("command-type").select_option("RequestConceptGeneration")
    await page.get_by_test_id("send-command").click()
    await expect(page.get_by_test_id("result-status")).to_have_text("202")
    command_id = json.loads(await page.get_by_test_id("result-body").inner_text())["command_id"]

    agent = {"Authorization": f"Bearer {issue_token(settings, 'concept-agent', 600, AGENT_SCOPE)}"}
    base = url.removesuffix("/console")
    async with aiohttp.ClientSession(headers=agent) as http:
        park = {"resume_handle": {"concepts": [{"title": "Salt"}]}, "timeout_seconds": 3600,
                "expects": ["SubmitFeedback"]}  # fmt: skip
        async with http.post(f"{base}/genesis/tasks/{command_id}/wait", json=park) as r:
            assert r.status == 201
        body = {"outcome": "COMPLETED", "result": {"concepts": [{"title": "Salt"}]}}
        async with http.post(f"{base}/genesis/tasks/{command_id}/complete", json=body) as r:
            assert r.status == 200

    await expect(waiting).to_be_visible()  # the ConceptProposed event refreshed the session
    await expect(waiting).to_contain_text("waiting for you")
    await expect(waiting.locator('[data-field="expects"]')).to_have_text("SubmitFeedback")
    await expect(waiting.locator('[data-field="flow"]')).to_have_text(command_id[:8])

    await page.get_by_test_id("command-type").select_option("SubmitFeedback")
    await page.get_by_test_id("payload-editor").fill(json.dumps({"feedback": "Saltier."}))
    await page.get_by_test_id("send-command").click()
    await expect(page.get_by_test_id("result-status")).to_have_text("202")
    await expect(waiting).to_be_hidden()
